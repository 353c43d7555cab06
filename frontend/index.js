// Entry module of the Layer View panel: TensorBoard imports it and calls
// render(). Panel keeps the state flow (state.js, url.js) and the toolbar and
// layer list; the data and its caches are model.js's, a run's column is
// column.js's, the class grids classgrid.js's, the enlarged view enlarge.js's.

import * as api from './api.js';
import {buildColumn, paintCell, paintCost} from './column.js';
import {closeModal} from './enlarge.js';
import {startLive} from './live.js';
import {Model} from './model.js';
import {COLORMAPS, NORMS, tileStats} from './normalise.js';
import {
  DIFFS, VIEWS, ZOOMS, alignLayers, assignColours, blockKeys, epochSpan, decodeState, encodeState, filterLayers, filterRuns, layerRows,
  moveStep, snapStep,
  unionSteps,
} from './state.js';
import {UrlState} from './url.js';
import {
  breakableName, el, emptyState, errorBanner, formatShape, formatTime, statsLines, tileUnder,
} from './views.js';

const PLAY_INTERVAL_MS = 400;
const VIEW_LABELS = {activations: 'Activations', filters: 'Filters', classes: 'Class views', health: 'Health', config: 'Config'};
const DEFAULT_SELECTED_RUNS = 3;

class Panel {
  constructor(root) {
    this.root = root;
    this.url = new UrlState();
    this.state = decodeState(this.url.read());
    this.runs = []; // from GET /runs
    this.colours = new Map(); // run -> colour, kept while the page lives
    this.layerFilter = '';
    this.runFilter = '';
    this.model = new Model(); // every cache of plugin data
    this.expandedGroups = new Set(); // blocks of a long layer list the user opened
    this.layerItems = new Map(); // layer path -> its row in the list
    this.layersShown = null; // what the layer list shows (renderLayers)
    this.runsShown = null; // what the run list shows (renderRuns)
    this.playing = null;
    this.paintToken = 0;
    this.structureKey = null;
    // Counters for tests and benchmarks, only with the debug switch (render()).
    this.debug = debugEnabled() ? {rebuilds: 0, firstPaintMs: undefined} : null;
    this.build();
  }

  // ------------------------------------------------------------------ shell

  build() {
    const s = this.state;
    const option = (v, label, cur) => el('option', {value: String(v), selected: String(v) === String(cur), text: label});
    this.runList = el('ul', {class: 'runs', 'aria-label': 'Runs'});
    this.runFilterBox = el('input', {
      type: 'search', class: 'run-filter', placeholder: 'Filter runs (text or regex)', 'aria-label': 'Filter runs',
      oninput: () => {
        this.runFilter = this.runFilterBox.value;
        this.renderRuns();
      },
    });
    this.runCount = el('div', {class: 'run-count'});
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
    this.diffSelect = el('select', {'aria-label': 'Compare', onchange: () => this.set({diff: this.diffSelect.value}, false)},
      DIFFS.map((d) => option(d, {none: 'as is', prev: 'Δ previous epoch', first: 'Δ first epoch', run: 'Δ first run'}[d], s.diff)));
    this.zoomSelect = el('select', {'aria-label': 'Zoom', onchange: () => this.set({zoom: +this.zoomSelect.value}, false)},
      ZOOMS.map((z) => option(z, `${z}×`, s.zoom)));
    this.message = el('div', {class: 'message'});
    this.main = el('div', {class: 'columns'});
    this.tooltip = el('pre', {class: 'tooltip', hidden: true});
    this.modal = el('div', {class: 'modal', hidden: true, onclick: (e) => {
      if (e.target === this.modal) closeModal(this);
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
        el('label', {title: 'Activations and filters as the signed change from another epoch or run'}, 'Show ', this.diffSelect),
        el('label', {title: 'Overlay where the model looks (Grad-CAM or saliency) on each probe'}, this.attrBox, ' attribution')));
    const sidebar = el('nav', {class: 'sidebar'},
      el('h3', {text: 'Runs'}), this.runFilterBox, this.runCount, this.runList,
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
    // Kept until the runs or the selection change: scrubbing and arrow keys ask
    // for it at every step, and aligning runs of hundreds of layers is not free.
    const key = this.state.runs.join('\u0000');
    const kept = this.layersKept;
    if (kept && kept.runs === this.runs && kept.key === key) return kept.layers;
    const layers = alignLayers(this.selectedRuns());
    this.layersKept = {runs: this.runs, key, layers};
    return layers;
  }

  colour(run) {
    return this.colours.get(run) || '#888888';
  }

  /** Called with each fresh GET /runs answer (live updates keep the selection). */
  setRuns(runs, readAhead) {
    if (Array.isArray(readAhead)) this.model.readAhead = readAhead; // the server's policy
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
    if (this.probeSelect.options.length !== count + 1) {
      const opts = [el('option', {value: '-1', text: 'all'})];
      for (let i = 0; i < count; i++) opts.push(el('option', {value: String(i), text: String(i)}));
      this.probeSelect.replaceChildren(...opts);
    }
    this.probeSelect.value = String(s.probe);
    this.normSelect.value = s.norm;
    this.cmapSelect.value = s.cmap;
    this.zoomSelect.value = String(s.zoom);
    this.attrBox.checked = s.attr;
    this.diffSelect.value = s.diff;
  }

  renderRuns() {
    // The filter only shortens the list: runs it hides stay shown if selected.
    const listed = filterRuns(this.runs, this.runFilter);
    const hidden = this.state.runs.filter((n) => !listed.some((r) => r.run === n)).length;
    this.runCount.textContent = listed.length === this.runs.length ? ''
      : `${listed.length} of ${this.runs.length} runs` + (hidden ? `; ${hidden} selected run${hidden > 1 ? 's' : ''} not listed` : '');
    // Every change of state comes here (each epoch while scrubbing): the list
    // is built again only when what it shows changed.
    const shown = listed.map((r) => [r.run, this.state.runs.includes(r.run), this.colour(r.run), epochSpan(r.steps)].join('\u0001'))
      .join('\u0000');
    if (shown === this.runsShown) return;
    this.runsShown = shown;
    const items = listed.map((r) => {
      const box = el('input', {type: 'checkbox', checked: this.state.runs.includes(r.run),
        onchange: () => {
          const sel = this.state.runs.filter((n) => n !== r.run);
          if (box.checked) sel.push(r.run);
          this.set({runs: this.runs.map((x) => x.run).filter((n) => sel.includes(n))});
        }});
      return el('li', {class: 'run'},
        el('label', {}, box, el('span', {class: 'swatch', style: `background:${this.colour(r.run)}`}),
          el('span', {class: 'run-name', title: r.run}, ...breakableName(r.run))),
        el('span', {class: 'run-meta', text: epochSpan(r.steps)}));
    });
    this.runList.replaceChildren(...items);
  }

  /** The layer list's rows as shown: filtered, long lists grouped by block (groups folded until opened). */
  visibleRows() {
    // The filtered layers and their blocks are kept until the layers or the
    // filter change: each arrow key asks for the rows twice.
    const all = this.layers();
    let kept = this.filterKept;
    if (!kept || kept.all !== all || kept.filter !== this.layerFilter) {
      const layers = filterLayers(all, this.layerFilter);
      kept = this.filterKept = {all, filter: this.layerFilter, layers, keys: blockKeys(layers)};
    }
    const filtering = Boolean(this.layerFilter.trim());
    return layerRows(kept.layers, {expanded: filtering ? undefined : this.expandedGroups, selected: this.state.layer,
      keys: kept.keys});
  }

  renderLayers() {
    const rows = this.visibleRows();
    const selected = this.state.layer;
    // Every change of state comes here (each epoch while scrubbing, each
    // arrow key): with hundreds of layers, building the list again (and the
    // layout it sets off) took most of a frame. Rows that show the same
    // things keep their elements; only the selection moves.
    const shown = rows.map(rowText).join('\u0000');
    if (shown === this.layersShown) {
      if (selected !== this.layerShownSelected) this.selectLayerItem(selected);
      return;
    }
    this.layersShown = shown;
    this.layerItems = new Map();
    const items = rows.map((l) => {
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
      const item = el('li', {
        class: 'layer',
        'data-path': l.path,
        style: `padding-left:${0.5 + l.depth}em`,
        role: 'option',
        'aria-selected': 'false',
        onclick: () => this.set({layer: l.path}),
      }, el('span', {class: 'layer-name', title: l.path}, ...breakableName(l.name)),
      el('span', {class: 'layer-meta', text: `${l.cls} ${formatShape(l.shape)}`}));
      this.layerItems.set(l.path, item);
      return item;
    });
    this.layerList.replaceChildren(...items);
    this.layerShownSelected = undefined;
    this.selectLayerItem(selected);
  }

  /** Marks the selected layer's row in the list, and scrolls it into view. */
  selectLayerItem(path) {
    const before = this.layerItems.get(this.layerShownSelected);
    if (before) {
      before.classList.remove('selected');
      before.setAttribute('aria-selected', 'false');
    }
    this.layerShownSelected = path;
    const sel = this.layerItems.get(path);
    if (!sel) return;
    sel.classList.add('selected');
    sel.setAttribute('aria-selected', 'true');
    if (sel.scrollIntoView) sel.scrollIntoView({block: 'nearest'});
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
    if (e.key === 'Escape') return closeModal(this);
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
    // Class grids and the Health view have epochs as columns: they are rebuilt as epochs come and go.
    const classes = s.view === 'classes' || s.view === 'health';
    const key = JSON.stringify([s.runs, s.layer, s.view, s.probe, s.attr, s.hstat, classes ? this.currentStep() : null,
      runs.map((r) => [r.probe_count, r.layers.length, classes ? r.steps.length : null])]);
    if (key !== this.structureKey) {
      this.structureKey = key;
      if (this.debug) this.debug.rebuilds += 1;
      this.columns = runs.map((r) => buildColumn(this, r));
      this.main.replaceChildren(...this.columns.map((c) => c.node));
      this.main.style.gridTemplateColumns = `repeat(${runs.length}, minmax(0, 1fr))`;
    }
    const painted = this.paint();
    if (s.view !== 'config') this.model.prefetch(this.columns, this.steps(), this.currentStep());
    return painted;
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
      jobs.push(paintCost(this, token, col, step));
      if (!col.layer) continue;
      const hasStep = col.run.steps.some((x) => x.step === step);
      for (const cell of col.cells) {
        jobs.push(paintCell(this, token, col, cell, step, hasStep));
      }
    }
    try {
      await Promise.all(jobs);
      if (token === this.paintToken) this.clearError();
      if (this.debug && this.debug.firstPaintMs === undefined && jobs.length) this.debug.firstPaintMs = performance.now();
    } catch (err) {
      if (token === this.paintToken) this.showError(err);
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
    this.tooltip.textContent = statsLines(`${what} ${t}`, tileStats(cell.tiles, t));
    this.tooltip.hidden = false;
    this.tooltip.style.left = `${e.clientX + 14}px`;
    this.tooltip.style.top = `${e.clientY + 14}px`;
  }


}

/** What a layer list row shows, as text: equal texts make equal rows. */
function rowText(r) {
  if (r.header !== undefined) return `h\u0001${r.header}\u0001${r.name}\u0001${r.depth}`;
  if (r.group !== undefined) return `g\u0001${r.group}\u0001${r.name}\u0001${r.depth}\u0001${r.count}\u0001${r.collapsed}`;
  return `l\u0001${r.path}\u0001${r.name}\u0001${r.depth}\u0001${r.cls}\u0001${formatShape(r.shape)}`;
}

/**
 * The debug switch: `localStorage.setItem('tb_layerview.debug', '1')` in the
 * TensorBoard page's console (then reload) exposes the panel as
 * `window.layerView`, with `debug.rebuilds` and `debug.firstPaintMs`.
 */
function debugEnabled() {
  try {
    return window.localStorage.getItem('tb_layerview.debug') === '1';
  } catch (err) {
    return false; // storage blocked: no debugging hooks
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
  if (panel.debug) window.layerView = panel;
  startLive(panel, api.fetchRuns);
  return panel;
}
