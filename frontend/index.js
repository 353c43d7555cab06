// Entry module of the Layer View panel: TensorBoard imports it and calls
// render(). It wires state (state.js), data (api.js) and views (views.js).

import * as api from './api.js';
import {memo} from './api.js';
import {startLive} from './live.js';
import {COLORMAPS, NORMS, colormapTable} from './normalise.js';
import {
  VIEWS, ZOOMS, alignLayers, assignColours, decodeState, encodeState, filterLayers, gridSteps, hashParam,
  layerRows, moveStep, nearestShown, planReason, snapStep, unionSteps, withHashParam,
} from './state.js';
import {
  configCard, cropTile, el, emptyState, errorBanner, formatShape, formatTime, paint, pixelsOf,
  predictionCorrect, predictionText, singleLayout, statsLines, tileUnder,
} from './views.js';

const PLAY_INTERVAL_MS = 400;
const VIEW_LABELS = {activations: 'Activations', filters: 'Filters', classes: 'Class views', config: 'Config'};
const CLASS_KIND_LABELS = {maximization: 'Activation maximisation', backquery: 'Back-query'};
const DEFAULT_SELECTED_RUNS = 3;
const URL_KEY = 'lv';

/**
 * Where the view state lives in the URL. Inside TensorBoard it is mirrored
 * into the top page's hash (`#tb_layerview&lv=...`, which TensorBoard keeps)
 * so that a copied link or a reload reproduces the view; the panel opened on
 * its own keeps it in its own hash.
 */
class UrlState {
  constructor() {
    this.host = null;
    try {
      if (window.parent !== window && window.parent.location.href) this.host = window.parent;
    } catch (err) {
      this.host = null; // cross-origin host: keep the state in our own URL only
    }
  }

  read() {
    if (this.host) {
      const text = hashParam(this.host.location.hash, URL_KEY);
      if (text !== null) return text;
    }
    return location.hash.replace(/^#/, '');
  }

  write(text, push) {
    // Only one window pushes: the iframe and its host share one session
    // history, and two entries per change would make Back take two presses.
    const own = location.pathname + location.search + '#' + text;
    const targets = [[window, own, push && !this.host]];
    if (this.host) {
      const loc = this.host.location;
      targets.push([this.host, loc.pathname + loc.search + withHashParam(loc.hash, URL_KEY, text), push]);
    }
    for (const [win, url, pushHere] of targets) {
      const current = win.location.pathname + win.location.search + win.location.hash;
      if (url === current) continue;
      if (pushHere) win.history.pushState(win.history.state, '', url);
      else win.history.replaceState(win.history.state, '', url);
    }
  }

  onChange(callback) {
    window.addEventListener('popstate', callback);
    if (this.host) this.host.addEventListener('popstate', callback);
  }
}

/** Per-tile stats of the image a cell shows (filters have one image, whatever the probe). */
function tilesOf(info, cell) {
  return info.tilesByProbe[cell.kind === 'filters' ? 0 : cell.probe] || [];
}

class Panel {
  constructor(root) {
    this.root = root;
    this.url = new UrlState();
    this.state = decodeState(this.url.read());
    this.runs = []; // from GET /runs
    this.colours = new Map(); // run -> colour, kept while the page lives
    this.layerFilter = '';
    this.configs = new Map(); // run -> config promise
    this.probes = new Map(); // run -> probes promise
    this.ranges = new Map(); // key -> ranges promise
    this.seriesStepLists = new Map(); // key -> steps of one series
    this.expandedGroups = new Set(); // blocks of a long layer list the user opened
    this.playing = null;
    this.paintToken = 0;
    this.structureKey = null;
    this.build();
  }

  // ------------------------------------------------------------------ shell

  build() {
    const s = this.state;
    const option = (v, label, cur) => el('option', {value: String(v), selected: String(v) === String(cur), text: label});
    this.runList = el('ul', {class: 'runs', 'aria-label': 'Runs'});
    this.filterBox = el('input', {
      type: 'search', class: 'layer-filter', placeholder: 'Filter layers', 'aria-label': 'Filter layers',
      oninput: () => {
        this.layerFilter = this.filterBox.value;
        this.renderLayers();
      },
      onkeydown: (e) => this.onListKey(e),
    });
    this.layerList = el('ul', {class: 'layers', tabindex: '0', 'aria-label': 'Layers', onkeydown: (e) => this.onListKey(e)});
    this.slider = el('input', {type: 'range', class: 'epoch-slider', min: '0', max: '0', value: '0', step: '1',
      'aria-label': 'Epoch', oninput: () => this.setStepIndex(+this.slider.value)});
    this.epochLabel = el('span', {class: 'epoch-label'});
    this.wallLabel = el('span', {class: 'wall-label'});
    this.playButton = el('button', {class: 'play', title: 'Play / pause (space)', text: 'Play', onclick: () => this.togglePlay()});
    this.followBox = el('input', {type: 'checkbox', checked: s.follow, onchange: () => {
      this.state.follow = this.followBox.checked;
      if (this.state.follow) this.state.step = null;
      this.commit(false);
    }});
    this.viewTabs = el('div', {class: 'tabs', role: 'tablist'},
      VIEWS.map((v) => el('button', {role: 'tab', 'data-view': v, text: VIEW_LABELS[v],
        onclick: () => this.set({view: v})})));
    this.probeSelect = el('select', {'aria-label': 'Probe', onchange: () => this.set({probe: +this.probeSelect.value})});
    this.normSelect = el('select', {'aria-label': 'Normalisation', onchange: () => this.set({norm: this.normSelect.value}, false)},
      NORMS.map((n) => option(n, {channel: 'per channel', layer: 'per layer', fixed: 'fixed over epochs'}[n], s.norm)));
    this.cmapSelect = el('select', {'aria-label': 'Colormap', onchange: () => this.set({cmap: this.cmapSelect.value}, false)},
      COLORMAPS.map((c) => option(c, c, s.cmap)));
    this.attrBox = el('input', {type: 'checkbox', checked: s.attr, onchange: () => this.set({attr: this.attrBox.checked}, false)});
    this.zoomSelect = el('select', {'aria-label': 'Zoom', onchange: () => this.set({zoom: +this.zoomSelect.value}, false)},
      ZOOMS.map((z) => option(z, `${z}×`, s.zoom)));
    this.message = el('div', {class: 'message'});
    this.main = el('div', {class: 'columns'});
    this.tooltip = el('pre', {class: 'tooltip', hidden: true});
    this.modal = el('div', {class: 'modal', hidden: true, onclick: (e) => {
      if (e.target === this.modal) this.closeModal();
    }});

    const toolbar = el('div', {class: 'toolbar'},
      el('div', {class: 'epoch-controls'},
        el('button', {title: 'Previous epoch (←)', text: '◀', onclick: () => this.moveEpoch(-1)}),
        this.slider,
        el('button', {title: 'Next epoch (→)', text: '▶', class: 'next', onclick: () => this.moveEpoch(1)}),
        this.playButton,
        el('label', {class: 'follow'}, this.followBox, ' follow latest'),
        this.epochLabel, this.wallLabel),
      el('div', {class: 'view-controls'}, this.viewTabs,
        el('label', {}, 'Probe ', this.probeSelect),
        el('label', {}, 'Normalise ', this.normSelect),
        el('label', {}, 'Colours ', this.cmapSelect),
        el('label', {}, 'Zoom ', this.zoomSelect),
        el('label', {title: 'Overlay where the model looks (Grad-CAM or saliency) on each probe'}, this.attrBox, ' attribution')));
    const sidebar = el('nav', {class: 'sidebar'},
      el('h3', {text: 'Runs'}), this.runList,
      el('h3', {text: 'Layers'}), this.filterBox, this.layerList);
    this.root.replaceChildren(el('div', {class: 'layerview'}, sidebar,
      el('section', {class: 'content'}, toolbar, this.message, this.main)), this.tooltip, this.modal);

    document.addEventListener('keydown', (e) => this.onKey(e));
    this.url.onChange(() => {
      this.state = decodeState(this.url.read());
      this.syncControls();
      this.refresh();
    });
  }

  // ------------------------------------------------------------- state flow

  set(patch, push = true) {
    Object.assign(this.state, patch);
    return this.commit(push);
  }

  /** Applies the state: URL, controls, content. Resolves once painted. */
  commit(push = true) {
    this.url.write(encodeState(this.state), push);
    this.syncControls();
    return this.refresh();
  }

  selectedRuns() {
    return this.state.runs.map((n) => this.runs.find((r) => r.run === n)).filter(Boolean);
  }

  steps() {
    return unionSteps(this.selectedRuns());
  }

  currentStep() {
    const steps = this.steps();
    return this.state.follow ? snapStep(steps, null) : snapStep(steps, this.state.step);
  }

  layers() {
    return alignLayers(this.selectedRuns());
  }

  colour(run) {
    return this.colours.get(run) || '#888888';
  }

  /** Called with each fresh GET /runs answer (live updates keep the selection). */
  setRuns(runs) {
    const first = this.runs.length === 0;
    this.runs = runs;
    this.colours = assignColours(this.colours, runs.map((r) => r.run));
    const names = new Set(runs.map((r) => r.run));
    const s = this.state;
    s.runs = s.runs.filter((n) => names.has(n));
    if (!s.runs.length && first) s.runs = runs.slice(0, DEFAULT_SELECTED_RUNS).map((r) => r.run);
    const layers = this.layers();
    if (layers.length && (s.layer === null || !layers.some((l) => l.path === s.layer))) {
      if (s.layer === null || first) s.layer = (layers.find((l) => l.kinds.has('activations')) || layers[0]).path;
    }
    this.url.write(encodeState(s), false);
    this.syncControls();
    this.refresh();
  }

  showError(err) {
    this.message.replaceChildren(errorBanner(err instanceof Error ? err.message : String(err)));
  }

  clearError() {
    this.message.replaceChildren();
  }

  // --------------------------------------------------------------- controls

  syncControls() {
    const s = this.state;
    this.renderRuns();
    this.renderLayers();
    const steps = this.steps();
    const step = this.currentStep();
    this.slider.max = String(Math.max(steps.length - 1, 0));
    this.slider.value = String(Math.max(steps.indexOf(step), 0));
    this.slider.disabled = steps.length < 2;
    this.epochLabel.textContent = step === null ? 'no epochs yet' : `epoch ${step} (${steps.indexOf(step) + 1}/${steps.length})`;
    const wall = this.selectedRuns().map((r) => r.steps.find((x) => x.step === step)).find(Boolean);
    this.wallLabel.textContent = wall ? formatTime(wall.wall_time) : '';
    this.followBox.checked = s.follow;
    for (const b of this.viewTabs.children) b.setAttribute('aria-selected', String(b.dataset.view === s.view));
    const count = Math.max(0, ...this.selectedRuns().map((r) => r.probe_count));
    const opts = [el('option', {value: '-1', text: 'all'})];
    for (let i = 0; i < count; i++) opts.push(el('option', {value: String(i), text: String(i)}));
    this.probeSelect.replaceChildren(...opts);
    this.probeSelect.value = String(s.probe);
    this.normSelect.value = s.norm;
    this.cmapSelect.value = s.cmap;
    this.zoomSelect.value = String(s.zoom);
    this.attrBox.checked = s.attr;
  }

  renderRuns() {
    const items = this.runs.map((r) => {
      const box = el('input', {type: 'checkbox', checked: this.state.runs.includes(r.run),
        onchange: () => {
          const sel = this.state.runs.filter((n) => n !== r.run);
          if (box.checked) sel.push(r.run);
          this.set({runs: this.runs.map((x) => x.run).filter((n) => sel.includes(n))});
        }});
      return el('li', {class: 'run'},
        el('label', {}, box, el('span', {class: 'swatch', style: `background:${this.colour(r.run)}`}),
          el('span', {class: 'run-name', text: r.run, title: r.run})),
        el('span', {class: 'run-meta', text: `${r.steps.length} epochs`}));
    });
    this.runList.replaceChildren(...items);
  }

  /** The layer list's rows as shown: filtered, long lists grouped by block (groups folded until opened). */
  visibleRows() {
    const layers = filterLayers(this.layers(), this.layerFilter);
    const filtering = Boolean(this.layerFilter.trim());
    return layerRows(layers, {expanded: filtering ? undefined : this.expandedGroups, selected: this.state.layer});
  }

  renderLayers() {
    const items = this.visibleRows().map((l) => {
      if (l.header !== undefined) {
        return el('li', {class: 'layer-group', style: `padding-left:${0.5 + l.depth}em`, title: l.header, text: `${l.name}/`});
      }
      if (l.group !== undefined) {
        return el('li', {
          class: 'layer-block' + (l.collapsed ? ' collapsed' : ''), style: `padding-left:${0.5 + l.depth}em`,
          title: `${l.group}: ${l.count} layers (click to ${l.collapsed ? 'open' : 'fold'})`,
          'aria-expanded': String(!l.collapsed), 'data-group': l.group,
          text: `${l.collapsed ? '▸' : '▾'} ${l.name} (${l.count})`,
          onclick: () => {
            if (l.collapsed) this.expandedGroups.add(l.group);
            else this.expandedGroups.delete(l.group);
            this.renderLayers();
          },
        });
      }
      return el('li', {
        class: 'layer' + (l.path === this.state.layer ? ' selected' : ''),
        'data-path': l.path,
        style: `padding-left:${0.5 + l.depth}em`,
        role: 'option',
        'aria-selected': String(l.path === this.state.layer),
        onclick: () => this.set({layer: l.path}),
      }, el('span', {class: 'layer-name', text: l.name, title: l.path}),
      el('span', {class: 'layer-meta', text: `${l.cls} ${formatShape(l.shape)}`}));
    });
    this.layerList.replaceChildren(...items);
    const sel = this.layerList.querySelector('.selected');
    if (sel && sel.scrollIntoView) sel.scrollIntoView({block: 'nearest'});
  }

  moveLayer(delta) {
    // Through the layers on screen: folded blocks are stepped over.
    const layers = this.visibleRows().filter((r) => r.header === undefined && r.group === undefined);
    if (!layers.length) return;
    let i = layers.findIndex((l) => l.path === this.state.layer);
    i = Math.max(0, Math.min(layers.length - 1, i < 0 ? 0 : i + delta));
    this.set({layer: layers[i].path});
  }

  moveEpoch(delta) {
    const steps = this.steps();
    const step = moveStep(steps, this.currentStep(), delta);
    this.state.follow = false;
    this.set({step}, false);
  }

  setStepIndex(i) {
    const steps = this.steps();
    if (!steps.length) return;
    this.state.follow = false;
    this.set({step: steps[Math.max(0, Math.min(i, steps.length - 1))]}, false);
  }

  togglePlay() {
    if (this.playing) {
      clearInterval(this.playing);
      this.playing = null;
      this.playButton.textContent = 'Play';
      return;
    }
    this.playButton.textContent = 'Pause';
    const steps = this.steps();
    if (steps.length && this.currentStep() === steps[steps.length - 1]) this.set({step: steps[0], follow: false}, false);
    this.playing = setInterval(() => {
      const all = this.steps();
      const cur = this.currentStep();
      if (!all.length || cur === all[all.length - 1]) return this.togglePlay();
      this.moveEpoch(1);
    }, PLAY_INTERVAL_MS);
  }

  onListKey(e) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      e.stopPropagation();
      this.moveLayer(e.key === 'ArrowDown' ? 1 : -1);
    }
  }

  onKey(e) {
    const tag = (e.target && e.target.tagName) || '';
    if (['INPUT', 'SELECT', 'TEXTAREA'].includes(tag) && e.target.type !== 'range' && e.target.type !== 'checkbox') return;
    if (e.key === 'Escape') return this.closeModal();
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      e.preventDefault();
      this.moveEpoch(e.key === 'ArrowRight' ? 1 : -1);
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      this.moveLayer(e.key === 'ArrowDown' ? 1 : -1);
    } else if (e.key === ' ') {
      e.preventDefault();
      this.togglePlay();
    }
  }

  // ---------------------------------------------------------------- content

  refresh() {
    if (!this.runs.length) {
      this.structureKey = 'empty';
      this.main.replaceChildren(emptyState());
      return Promise.resolve();
    }
    const s = this.state;
    const runs = this.selectedRuns();
    if (!runs.length) {
      this.structureKey = 'none';
      this.main.replaceChildren(el('div', {class: 'placeholder', text: 'Select a run on the left.'}));
      return Promise.resolve();
    }
    // Rebuild the DOM only when the structure changes; a new epoch during
    // training just repaints (except the class grids, whose columns are epochs).
    const classes = s.view === 'classes';
    const key = JSON.stringify([s.runs, s.layer, s.view, s.probe, s.attr, classes ? this.currentStep() : null,
      runs.map((r) => [r.probe_count, r.layers.length, classes ? r.steps.length : null])]);
    if (key !== this.structureKey) {
      this.structureKey = key;
      this.rebuilds = (this.rebuilds || 0) + 1;
      this.columns = runs.map((r) => this.buildColumn(r));
      this.main.replaceChildren(...this.columns.map((c) => c.node));
      this.main.style.gridTemplateColumns = `repeat(${runs.length}, minmax(0, 1fr))`;
    }
    const painted = this.paint();
    this.prefetch();
    return painted;
  }

  buildColumn(run) {
    const s = this.state;
    const layer = run.layers.find((l) => l.path === s.layer);
    const head = el('header', {class: 'column-head'},
      el('span', {class: 'swatch', style: `background:${this.colour(run.run)}`}),
      el('span', {class: 'run-name', text: run.run}));
    const body = el('div', {class: 'column-body'});
    const col = {run, layer, node: el('div', {class: 'column', 'data-run': run.run}, head, body), cells: []};
    if (s.view === 'classes') {
      col.layer = null; // nothing per layer to paint
      this.classViews(run, body);
      return col;
    }
    if (!layer) {
      body.append(el('div', {class: 'placeholder', text: `Layer “${s.layer ?? ''}” is not in this run.`}));
      return col;
    }
    body.append(el('div', {class: 'layer-title'},
      el('strong', {text: layer.path}), ` ${layer.class} ${formatShape(layer.output_shape)}`));
    if (s.view === 'config') {
      const holder = el('div', {class: 'config-holder', text: 'Loading…'});
      body.append(holder);
      this.config(run.run).then((cfg) => {
        holder.replaceChildren(configCard((cfg.layers || []).find((l) => l.path === layer.path)));
      }).catch((err) => holder.replaceChildren(errorBanner(err.message)));
      return col;
    }
    const kind = s.view;
    if (!layer.kinds[kind]) {
      body.append(el('div', {class: 'placeholder',
        text: kind === 'filters' ? 'This layer has no filters (only convolution and dense kernels are drawn).'
          : 'No activations were logged for this layer (see its configuration for why).'}));
      return col;
    }
    const probes = kind === 'filters' ? [0] : (s.probe < 0 ? [...Array(run.probe_count).keys()] : [Math.min(s.probe, Math.max(run.probe_count - 1, 0))]);
    for (const p of probes) {
      const canvas = el('canvas', {class: 'tiles'});
      const status = el('div', {class: 'cell-status'});
      const notice = el('div', {class: 'thinned', hidden: true, role: 'note'});
      const cell = {probe: p, kind, canvas, status, notice};
      const side = kind === 'activations' ? this.probeSide(run, p, cell) : null;
      canvas.addEventListener('mousemove', (e) => this.hover(cell, e));
      canvas.addEventListener('mouseleave', () => {
        this.tooltip.hidden = true;
      });
      canvas.addEventListener('click', (e) => this.enlarge(col, cell, e));
      body.append(el('div', {class: 'cell'}, side, el('div', {class: 'cell-main'}, notice, canvas, status)));
      col.cells.push(cell);
    }
    return col;
  }

  /** The class x epoch grids of a run (activation maximisation, back-query, units of the layer). */
  classViews(run, body) {
    const views = run.class_views || {};
    for (const kind of ['maximization', 'backquery']) {
      const section = el('section', {class: 'class-view', 'data-kind': kind}, el('h4', {text: CLASS_KIND_LABELS[kind]}));
      body.append(section);
      if (!views[kind]) {
        const why = el('div', {class: 'placeholder', text: `No ${CLASS_KIND_LABELS[kind].toLowerCase()} in this run.`});
        section.append(why);
        this.config(run.run).then((cfg) => {
          const status = (cfg.class_views || {})[kind];
          if (status && status.reason) why.textContent = status.reason;
        }).catch(() => {});
        continue;
      }
      section.append(this.epochGrid(run, kind, null));
    }
    const layer = run.layers.find((l) => l.path === this.state.layer);
    if (layer && layer.kinds.units) {
      body.append(el('section', {class: 'class-view', 'data-kind': 'units'},
        el('h4', {text: `Units of ${layer.path}`}), this.epochGrid(run, 'units', layer.path)));
    }
  }

  /** A row-per-image x column-per-epoch grid of one series; rows are classes or units. */
  epochGrid(run, kind, layer) {
    const holder = el('div', {class: 'class-grid-holder', text: 'Loading…'});
    api.fetchSteps(run.run, layer, kind).then(async (res) => {
      const all = res.steps.map((x) => x.step);
      const steps = gridSteps(all, this.currentStep());
      const current = snapStep(all, this.currentStep());
      const info = await api.fetchInfo(run.run, layer, kind, steps[steps.length - 1]);
      const labels = info.units ? info.units.map((u) => `unit ${u}`) : info.classes.map((c, i) => info.names[i] ?? String(c));
      const table = el('table', {class: 'class-grid'});
      table.append(el('tr', {}, el('th', {text: `${info.units ? 'unit' : 'class'} \\ epoch`}),
        steps.map((st) => el('th', {class: st === current ? 'current' : '', text: String(st)}))));
      labels.forEach((label, i) => {
        table.append(el('tr', {}, el('th', {class: 'class-name', text: label}),
          steps.map((st) => el('td', {class: st === current ? 'current' : ''},
            el('img', {class: 'class-img', alt: `${label} at epoch ${st}`, title: `${label} · epoch ${st}`,
              src: api.imageUrl(run.run, layer, kind, st, i),
              onclick: () => this.set({step: st, follow: false}, false)})))));
      });
      holder.replaceChildren(table);
    }).catch((err) => holder.replaceChildren(errorBanner(err.message)));
    return holder;
  }

  /** Draws the attribution map of probe `p` at `step` over its input image. */
  async paintAttribution(run, cell, step, token) {
    const overlay = cell.overlay;
    if (!overlay) return;
    if (!this.state.attr || !(run.class_views || {}).attribution) {
      overlay.hidden = true;
      return;
    }
    try {
      const info = await api.fetchInfo(run.run, null, 'attribution', step);
      const i = info.targets.findIndex((t) => t.probe === cell.probe && t.which === 'predicted');
      if (i < 0) return;
      const url = api.imageUrl(run.run, null, 'attribution', step, i);
      const px = pixelsOf(url, await api.loadImage(url));
      if (token !== this.paintToken) return;
      const table = colormapTable('magma');
      const out = new ImageData(px.width, px.height);
      for (let k = 0; k < px.width * px.height; k++) {
        const v = px.data[k * 4];
        out.data.set([table[v * 3], table[v * 3 + 1], table[v * 3 + 2], Math.round(v * 0.7)], k * 4);
      }
      overlay.width = px.width;
      overlay.height = px.height;
      overlay.getContext('2d').putImageData(out, 0, 0);
      overlay.hidden = false;
      overlay.title = `${info.method}${info.layer ? ' on ' + info.layer : ''} for class ${info.targets[i].class}`;
    } catch (err) {
      overlay.hidden = true; // no attribution at this step
    }
  }

  probeSide(run, p, cell) {
    const side = el('div', {class: 'probe'});
    cell.prediction = el('pre', {class: 'prediction'});
    if (!run.has_probes) {
      side.append(el('div', {class: 'probe-index', text: `probe ${p}`}), cell.prediction);
      return side;
    }
    this.probeInfo(run.run).then((info) => {
      const head = el('div', {class: 'probe-index', text: `probe ${p}`});
      if (info.drawn_input !== null && info.drawn_input !== undefined) {
        const img = el('img', {class: 'probe-img', alt: `probe ${p}`, src: api.probeImageUrl(run.run, p)});
        cell.overlay = el('canvas', {class: 'attribution', hidden: true});
        side.prepend(head, el('div', {class: 'probe-stack'}, img, cell.overlay));
        if (cell.step !== undefined) this.paintAttribution(run, cell, cell.step, this.paintToken);
      } else {
        const values = info.probes[p] ? Object.values(info.probes[p].inputs)[0].values.slice(0, 6) : [];
        side.prepend(head, el('div', {class: 'probe-values', text: values.map((v) => v.toFixed(2)).join(' ')}));
      }
    }).catch(() => side.prepend(el('div', {class: 'probe-index', text: `probe ${p}`})));
    side.append(cell.prediction);
    return side;
  }

  config(run) {
    return memo(this.configs, run, () => api.fetchConfig(run));
  }

  probeInfo(run) {
    return memo(this.probes, run, () => api.fetchProbes(run));
  }

  /** The steps one series holds (the budget may thin images), per run version. */
  seriesSteps(run, layer, kind, version) {
    return memo(this.seriesStepLists, JSON.stringify([run, layer, kind, version]),
      () => api.fetchSteps(run, layer, kind).then((res) => res.steps.map((x) => x.step)));
  }

  fixedRanges(run, layer, kind, version) {
    return memo(this.ranges, JSON.stringify([run, layer, kind, version]), () => api.fetchRanges(run, layer, kind));
  }

  /** Repaints every visible image for the current step and display options. */
  async paint() {
    const token = ++this.paintToken;
    const s = this.state;
    const step = this.currentStep();
    if (step === null || s.view === 'config') return;
    const jobs = [];
    for (const col of this.columns || []) {
      // Live updates bring new run objects (new epochs) without a rebuild.
      col.run = this.runs.find((r) => r.run === col.run.run) || col.run;
      if (!col.layer) continue;
      const hasStep = col.run.steps.some((x) => x.step === step);
      for (const cell of col.cells) {
        jobs.push(this.paintCell(token, col, cell, step, hasStep));
      }
    }
    try {
      await Promise.all(jobs);
      if (token === this.paintToken) this.clearError();
      if (this.firstPaintMs === undefined && jobs.length) this.firstPaintMs = performance.now();
    } catch (err) {
      if (token === this.paintToken) this.showError(err);
    }
  }

  async paintCell(token, col, cell, step, hasStep) {
    const s = this.state;
    const run = col.run.run;
    const layer = col.layer.path;
    if (!hasStep) {
      cell.status.textContent = `No epoch ${step} in this run.`;
      cell.canvas.classList.add('stale');
      return;
    }
    // The budget may have left this layer's images out at this epoch: show
    // the nearest drawn epoch and say why, never an empty gap.
    let notice = '';
    const drawn = await this.seriesSteps(run, layer, cell.kind, col.run.steps.length);
    if (!drawn.includes(step)) {
      const reason = col.run.has_plan
        ? await api.fetchPlan(run, step).then((p) => planReason(p, layer, cell.kind)).catch(() => null) : null;
      const shownStep = nearestShown(drawn, step);
      notice = `No ${cell.kind === 'filters' ? 'filters' : 'images'} at epoch ${step}${reason ? ` (${reason})` : ''}.` +
        (shownStep !== null ? ` Showing epoch ${shownStep}.` : '');
      if (token !== this.paintToken) return;
      cell.notice.textContent = notice;
      cell.notice.hidden = false;
      if (shownStep === null) {
        cell.canvas.classList.add('stale');
        return;
      }
      step = shownStep;
    } else {
      cell.notice.hidden = true;
    }
    const url = api.imageUrl(run, layer, cell.kind, step, cell.probe);
    const [img, info] = await Promise.all([api.loadImage(url), api.fetchInfo(run, layer, cell.kind, step)]);
    let fixed = null;
    if (s.norm === 'fixed') {
      fixed = await this.fixedRanges(run, layer, cell.kind, col.run.steps.length);
    }
    if (cell.prediction && cell.kind === 'activations') {
      api.fetchPredictions(run, step).then((pred) => {
        if (token !== this.paintToken) return;
        const entry = pred.probes[cell.probe];
        cell.prediction.textContent = predictionText(entry, null);
        const ok = predictionCorrect(entry);
        cell.prediction.className = 'prediction' + (ok === true ? ' correct' : ok === false ? ' wrong' : '');
      }).catch(() => {});
    }
    if (token !== this.paintToken) return;
    const tiles = tilesOf(info, cell);
    cell.info = info;
    cell.tiles = tiles;
    cell.step = step;
    paint(cell.canvas, pixelsOf(url, img), info, tiles, {norm: s.norm, cmap: s.cmap, zoom: s.zoom, fixed, rgb: info.rgb});
    cell.canvas.classList.toggle('stale', Boolean(notice));
    if (cell.kind === 'activations') this.paintAttribution(col.run, cell, step, token);
    const shown = info.shown < info.channels ? `${info.shown} of ${info.channels} ${cell.kind === 'filters' ? 'filters' : 'channels'}` : '';
    const notes = [shown, info.scale > 1 ? `downsampled ${info.scale}×` : '', info.slice ? `middle slice ${info.slice.index}` : '', info.note || '']
      .filter(Boolean).join(' · ');
    cell.status.textContent = notes;
  }

  /** Warms the browser cache with the neighbouring epochs each series holds. */
  prefetch() {
    const steps = this.steps();
    const step = this.currentStep();
    const i = steps.indexOf(step);
    if (i < 0 || this.state.view === 'config') return;
    for (const col of this.columns || []) {
      if (!col.layer) continue;
      for (const cell of col.cells) {
        const run = col.run.run;
        const layer = col.layer.path;
        this.seriesSteps(run, layer, cell.kind, col.run.steps.length).then((drawn) => {
          for (const d of [1, -1, 2]) {
            const next = steps[i + d];
            if (next === undefined || !drawn.includes(next)) continue;
            api.loadImage(api.imageUrl(run, layer, cell.kind, next, cell.probe)).catch(() => {});
            api.fetchInfo(run, layer, cell.kind, next).catch(() => {});
          }
        }).catch(() => {});
      }
    }
  }

  hover(cell, e) {
    if (!cell.info) return;
    const t = tileUnder(cell.canvas, cell.info, e);
    if (t < 0) {
      this.tooltip.hidden = true;
      return;
    }
    const what = cell.kind === 'filters' ? 'filter' : (cell.info.layout === 'grid' || cell.info.layout === 'volume' ? 'channel' : 'values');
    this.tooltip.textContent = statsLines(`${what} ${t}`, cell.tiles[t] || {});
    this.tooltip.hidden = false;
    this.tooltip.style.left = `${e.clientX + 14}px`;
    this.tooltip.style.top = `${e.clientY + 14}px`;
  }

  /** Shows one channel large, with a filmstrip of it across all epochs. */
  async enlarge(col, cell, e) {
    if (!cell.info) return;
    const t = tileUnder(cell.canvas, cell.info, e);
    if (t < 0) return;
    const s = this.state;
    const run = col.run.run;
    const layer = col.layer.path;
    const title = `${run} · ${layer} · ${cell.kind === 'filters' ? 'filter' : 'channel'} ${t}` +
      (cell.kind === 'activations' ? ` · probe ${cell.probe}` : '');
    const strip = el('div', {class: 'filmstrip'});
    const big = el('canvas', {class: 'tiles big'});
    this.modal.replaceChildren(el('div', {class: 'modal-body', role: 'dialog', 'aria-label': title},
      el('div', {class: 'modal-head'}, el('strong', {text: title}),
        el('button', {text: 'Close', onclick: () => this.closeModal()})),
      big, el('h4', {text: 'Across epochs'}), strip));
    this.modal.hidden = false;
    const fixed = s.norm === 'fixed' ? await this.fixedRanges(run, layer, cell.kind, col.run.steps.length) : null;
    const draw = async (canvas, step, zoom) => {
      const url = api.imageUrl(run, layer, cell.kind, step, cell.probe);
      const [img, info] = await Promise.all([api.loadImage(url), api.fetchInfo(run, layer, cell.kind, step)]);
      const tile = cropTile(pixelsOf(url, img), info, t);
      const all = tilesOf(info, cell);
      const stats = all[t] || {};
      // One tile alone: express "per layer" and "fixed" as a fixed range for it.
      let range = null;
      if (s.norm === 'layer') {
        range = {min: Math.min(...all.map((x) => x.min ?? 0)), max: Math.max(...all.map((x) => x.max ?? 0))};
      } else if (s.norm === 'fixed' && fixed) {
        range = {min: fixed.tile_min[t], max: fixed.tile_max[t]};
      }
      paint(canvas, tile, singleLayout(tile.width, tile.height), [stats],
        {norm: range ? 'fixed' : 'channel', cmap: s.cmap, zoom, fixed: range, rgb: info.rgb, minSide: 1});
      canvas.dataset.painted = 'true';
    };
    const bigZoom = Math.max(2, Math.floor(320 / Math.max(cell.info.tile_w, cell.info.tile_h)));
    await draw(big, cell.step, bigZoom).catch((err) => this.showError(err));
    for (const x of col.run.steps) {
      const c = el('canvas', {class: 'tiles', title: `epoch ${x.step}`});
      const fig = el('figure', {class: x.step === cell.step ? 'current' : ''}, c, el('figcaption', {text: String(x.step)}));
      fig.addEventListener('click', () => {
        this.closeModal();
        this.set({step: x.step, follow: false}, false);
      });
      strip.append(fig);
      draw(c, x.step, Math.max(1, Math.floor(64 / Math.max(cell.info.tile_w, cell.info.tile_h)))).catch(() => {});
    }
  }

  closeModal() {
    this.modal.hidden = true;
    this.modal.replaceChildren();
  }
}

/** Entry point called by TensorBoard (no arguments). */
export async function render() {
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = new URL('./style.css', import.meta.url).href;
  document.head.append(link);
  const root = document.createElement('div');
  document.body.append(root);
  const panel = new Panel(root);
  window.layerView = panel; // handy for debugging and for the browser tests
  startLive(panel, api.fetchRuns);
  return panel;
}
