// The panel's view state and its URL encoding (pure; no DOM).

import {COLORMAPS, NORMS} from './normalise.js';

export const VIEWS = ['activations', 'filters', 'classes', 'health', 'config'];
/** Difference modes of the Activations and Filters views. */
export const DIFFS = ['none', 'prev', 'first', 'run'];
/** Statistics the Health view's heatmap can show (GET /stats names). */
export const HEALTH_STATS = ['active', 'zero', 'sat', 'mean', 'std', 'min', 'max', 'nan', 'inf'];
export const ZOOMS = [1, 2, 3, 4, 6, 8];
/** Unit problems of GET /health, with the words the Health view uses. */
export const UNIT_PROBLEMS = [['dead', 'dead'], ['saturated', 'saturated'], ['nonfinite', 'NaN/Inf']];

/**
 * One cell of the Health view's table: a layer's units with `problem` at
 * the last epoch ("3 / 64 since 5"), or, when it went away, when it was
 * first seen ("0 / 64 (first at 2)"); '–' where the activation has no such
 * notion.
 */
export function problemCell(layer, problem) {
  const n = layer[problem];
  if (n === null || n === undefined) return '–';
  const since = (layer.since || {})[problem];
  const first = (layer.first || {})[problem];
  if (n && since !== undefined) return `${n} / ${layer.channels} since ${since}`;
  if (first !== undefined) return `${n} / ${layer.channels} (first at ${first})`;
  return `${n} / ${layer.channels}`;
}

/** The first epoch any unit problem of a layer appeared (GET /health), or null. */
export function firstProblem(layer) {
  const steps = Object.values(layer.first || layer.since || {});
  return steps.length ? Math.min(...steps) : null;
}

/**
 * The units of the selected layer that have each problem now, longest
 * first, from GET /health's `units`: one line per problem that some unit
 * has ("dead (2): channel 5 since 0, 1 since 3"), at most `max` units each.
 */
export function unitLines(units, max = 12) {
  const lines = [];
  for (const [key, label] of UNIT_PROBLEMS) {
    const list = (units && units[key]) || [];
    if (!list.length) continue;
    const sorted = [...list].sort((a, b) => a[1] - b[1] || a[0] - b[0]);
    const shown = sorted.slice(0, max).map(([c, since]) => `${c} since ${since}`).join(', ');
    const more = sorted.length > max ? `, … and ${sorted.length - max} more` : '';
    lines.push(`${label} (${list.length}): channel ${shown}${more}`);
  }
  return lines;
}

export function defaultState() {
  return {
    runs: [], // selected runs, in display order
    layer: null, // layer path
    step: null, // epoch (null: latest)
    view: 'activations',
    probe: 0, // probe index, or -1 for all probes
    norm: 'channel',
    cmap: 'grey',
    zoom: 2,
    follow: true, // jump to the newest epoch as it arrives
    attr: true, // overlay attribution maps on the probes
    hstat: 'active', // the statistic of the Health view's heatmap
    diff: 'none', // show the change from the previous epoch, epoch 0 or the first run
  };
}

function intOr(value, fallback, min, max) {
  if (value === null || value === undefined || value === '' || !/^-?\d+$/.test(value)) return fallback;
  const n = parseInt(value, 10);
  return n >= min && n <= max ? n : fallback;
}

/** Serialises the parts of `state` that make a view reproducible. */
export function encodeState(state) {
  const q = new URLSearchParams();
  for (const run of state.runs) q.append('run', run);
  if (state.layer !== null) q.set('layer', state.layer);
  if (state.step !== null && !state.follow) q.set('step', String(state.step));
  q.set('view', state.view);
  q.set('probe', String(state.probe));
  q.set('norm', state.norm);
  q.set('cmap', state.cmap);
  q.set('zoom', String(state.zoom));
  if (!state.attr) q.set('attr', '0');
  if (state.hstat !== 'active') q.set('hstat', state.hstat);
  if (state.diff !== 'none') q.set('diff', state.diff);
  return q.toString();
}

/** Parses `encodeState` output; unknown or malformed values fall back to defaults. */
export function decodeState(text) {
  const s = defaultState();
  const q = new URLSearchParams(text.replace(/^[#?]/, ''));
  s.runs = q.getAll('run');
  s.layer = q.has('layer') ? q.get('layer') : null;
  const step = intOr(q.get('step'), null, 0, Number.MAX_SAFE_INTEGER);
  if (step !== null) {
    s.step = step;
    s.follow = false;
  }
  if (VIEWS.includes(q.get('view'))) s.view = q.get('view');
  s.probe = intOr(q.get('probe'), 0, -1, 1000);
  if (NORMS.includes(q.get('norm'))) s.norm = q.get('norm');
  if (COLORMAPS.includes(q.get('cmap'))) s.cmap = q.get('cmap');
  const zoom = intOr(q.get('zoom'), s.zoom, 1, 16);
  s.zoom = ZOOMS.includes(zoom) ? zoom : s.zoom;
  s.attr = q.get('attr') !== '0';
  if (HEALTH_STATS.includes(q.get('hstat'))) s.hstat = q.get('hstat');
  if (DIFFS.includes(q.get('diff'))) s.diff = q.get('diff');
  return s;
}

/** Sorted union of the steps of `runs` (objects from GET /runs). */
export function unionSteps(runs) {
  const set = new Set();
  for (const r of runs) for (const s of r.steps) set.add(s.step);
  return [...set].sort((a, b) => a - b);
}

/** The logged step nearest to `step` (ties go down); null when none. */
export function snapStep(steps, step) {
  if (!steps.length) return null;
  if (step === null || step === undefined) return steps[steps.length - 1];
  let best = steps[0];
  for (const s of steps) if (Math.abs(s - step) < Math.abs(best - step)) best = s;
  return best;
}

/** The step `delta` positions away from `step` in `steps`, clamped. */
export function moveStep(steps, step, delta) {
  if (!steps.length) return null;
  let i = steps.indexOf(snapStep(steps, step));
  i = Math.max(0, Math.min(steps.length - 1, i + delta));
  return steps[i];
}

/**
 * Layers of the selected runs aligned by path: the first run's order, then
 * layers only other runs have. Each item: {path, depth, cls, shape, runs}.
 */
export function alignLayers(runs) {
  const byPath = new Map();
  const order = [];
  for (const r of runs) {
    for (const l of r.layers) {
      if (!byPath.has(l.path)) {
        byPath.set(l.path, {
          path: l.path,
          name: l.name, // GET /runs gives the display name (metadata.display_name)
          depth: l.parent ? l.parent.split('/').length : 0,
          parent: l.parent,
          cls: l.class,
          shape: l.output_shape,
          kinds: new Set(),
          runs: new Set(),
        });
        order.push(l.path);
      }
      const item = byPath.get(l.path);
      item.runs.add(r.run);
      for (const k of Object.keys(l.kinds)) item.kinds.add(k);
    }
  }
  return order.map((p) => byPath.get(p));
}

/**
 * The test a filter box applies, case-insensitive: text matches when it holds
 * what was typed, or when what was typed is a regular expression that finds
 * something in it (TensorBoard's run filter takes one: `^resnet|vgg`).
 * Blank matches everything.
 */
export function textMatcher(filter) {
  const f = (filter || '').trim();
  if (!f) return () => true;
  let re = null;
  try {
    re = new RegExp(f, 'i');
  } catch (err) {
    re = null; // not a regular expression (`conv(`): the plain text is looked for
  }
  const lower = f.toLowerCase();
  return (text) => String(text).toLowerCase().includes(lower) || (re !== null && re.test(String(text)));
}

/** Layers whose path or class matches `filter` (see {@link textMatcher}). */
export function filterLayers(layers, filter) {
  const match = textMatcher(filter);
  return layers.filter((l) => match(l.path) || match(l.cls || ''));
}

/** Runs whose name matches `filter` (see {@link textMatcher}). */
export function filterRuns(runs, filter) {
  const match = textMatcher(filter);
  return runs.filter((r) => match(r.run));
}

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7',
  '#9c755f', '#bab0ac'];

/**
 * Gives each run name a colour: names already in `colours` keep theirs, new
 * ones take the palette's colours in order (least used first), so that runs
 * shown together differ.
 */
export function assignColours(colours, names) {
  const out = new Map(colours);
  for (const name of names) {
    if (out.has(name)) continue;
    const uses = PALETTE.map((c) => [...out.values()].filter((v) => v === c).length);
    out.set(name, PALETTE[uses.indexOf(Math.min(...uses))]);
  }
  return out;
}

/**
 * Reads `key` from a TensorBoard-style hash such as `#tb_layerview&lv=...`
 * (items separated by '&'); null when absent.
 */
export function hashParam(hash, key) {
  for (const item of hash.replace(/^#/, '').split('&')) {
    const eq = item.indexOf('=');
    if (eq > 0 && item.slice(0, eq) === key) {
      try {
        return decodeURIComponent(item.slice(eq + 1));
      } catch (err) {
        return null;
      }
    }
  }
  return null;
}

/**
 * The view state in the panel's own hash: a link copied from TensorBoard
 * (`#tb_layerview&lv=<state>`) or the panel's own form (`#<state>`).
 */
export function ownHashState(hash) {
  const lv = hashParam(hash, 'lv');
  return lv !== null ? lv : hash.replace(/^#/, '');
}

/** Returns `hash` with `key` set to `value` (other items kept, in order). */
export function withHashParam(hash, key, value) {
  const items = hash.replace(/^#/, '').split('&').filter((item) => item && !item.startsWith(key + '='));
  items.push(`${key}=${encodeURIComponent(value)}`);
  return '#' + items.join('&');
}

/**
 * At most `max` steps of `steps` for the columns of a class x epoch grid:
 * evenly spread, always with the first, the last and `current` (snapped).
 */
export function gridSteps(steps, current, max = 10) {
  if (steps.length <= max) return steps.slice();
  const picked = new Set([steps[0], steps[steps.length - 1]]);
  const cur = snapStep(steps, current);
  if (cur !== null) picked.add(cur);
  for (let i = 1; picked.size < max && i < max; i++) {
    picked.add(steps[Math.round((i * (steps.length - 1)) / (max - 1))]);
  }
  return [...picked].sort((a, b) => a - b);
}

/**
 * The block a layer name belongs to in a flat model of hundreds of layers:
 * the name up to its first token with a digit (`block_3_expand_BN` ->
 * `block_3`, `conv2_block1_1_conv` -> `conv2`, `block4_pool` -> `block4`),
 * or null when no token has one.
 */
export function blockKey(name) {
  const tokens = String(name).split('_');
  const i = tokens.findIndex((t) => /\d/.test(t));
  if (i < 0 || (i === tokens.length - 1 && i === 0)) return null;
  return tokens.slice(0, i + 1).join('_');
}

/**
 * The name Keras gives a layer or operation of class `cls` that was not
 * named (its class in snake case: `ReLU` -> `re_lu`, `Multiply` ->
 * `multiply`), as Keras' `naming.to_snake_case` makes it.
 */
export function kerasDefaultName(cls) {
  return String(cls || '').replace(/\W+/g, '').replace(/(.)([A-Z][a-z]+)/g, '$1_$2')
    .replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

/**
 * Whether a layer kept the name Keras made up for it (`re_lu_7`, `add_3`:
 * its class in snake case and a count), a call suffix (`@2`) aside. Such
 * names say nothing about the block they sit in.
 */
export function hasDefaultName(layer) {
  const base = kerasDefaultName(layer.cls ?? layer.class);
  const name = String(layer.name ?? layer.path).replace(/@\d+$/, '');
  if (!base || !name.startsWith(base)) return false;
  const rest = name.slice(base.length);
  return rest === '' || /^_\d+$/.test(rest);
}

/**
 * The block key (blockKey) of each layer in a list. A layer with a name
 * Keras made up (hasDefaultName), such as the `re_lu_7` and `multiply_3`
 * that MobileNetV3 leaves unnamed or the `add` of an `x + 3.0` between two
 * layers, joins the block of the named layers on both sides of it when they
 * share one, so that it does not cut the block in two; elsewhere it has none.
 */
export function blockKeys(layers) {
  const own = layers.map((l) => (hasDefaultName(l) ? undefined : blockKey(l.name ?? l.path)));
  const parentOf = (i) => layers[i].parent || '';
  const neighbour = (i, step) => {
    for (let j = i + step; j >= 0 && j < layers.length && parentOf(j) === parentOf(i); j += step) {
      if (own[j] !== undefined) return own[j];
    }
    return null;
  };
  return own.map((key, i) => {
    if (key !== undefined) return key;
    const before = neighbour(i, -1);
    return before !== null && before === neighbour(i, 1) ? before : null;
  });
}

/** Lists longer than this group consecutive layers of one block. */
export const GROUP_MIN_LAYERS = 30;

/**
 * The layer list's rows: each layer, preceded by a header row for its
 * enclosing nested model whenever that changes (`{header: path, depth}`).
 * In lists of more than GROUP_MIN_LAYERS layers, two or more consecutive
 * layers of one block (blockKeys) under the same parent also get a group row
 * (`{group: key, name, depth, count, collapsed}`); the layers of a group in
 * `opts.collapsed` (or not in `opts.expanded`, when given) are left out,
 * except `opts.selected`. `opts.keys`, when given, is `blockKeys(layers)`
 * made earlier.
 */
export function layerRows(layers, opts = {}) {
  const collapsedSet = opts.collapsed || new Set();
  // With `opts.expanded`, every group not in it is collapsed instead.
  const isCollapsed = (id) => (opts.expanded ? !opts.expanded.has(id) : collapsedSet.has(id));
  const grouping = layers.length > GROUP_MIN_LAYERS;
  const keys = grouping ? (opts.keys || blockKeys(layers)) : layers.map(() => null);
  const rows = [];
  let parent = '';
  // Blocks of one name may recur apart (NASNet's cells reuse separable_conv_1):
  // each run is its own group, `name~2` from the second on, opened alone.
  const starts = new Map();
  let id = null;
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i];
    if (l.parent && l.parent !== parent) {
      const parts = l.parent.split('/');
      // Headers for every enclosing level not already open.
      const open = parent ? parent.split('/') : [];
      for (let d = 0; d < parts.length; d++) {
        if (open[d] !== parts[d]) {
          rows.push({header: parts.slice(0, d + 1).join('/'), name: parts[d], depth: d});
          open.length = d;
          open.push(parts[d]);
        }
      }
    }
    parent = l.parent || '';
    const key = keys[i];
    const same = (j) => j >= 0 && j < layers.length && keys[j] === key && (layers[j].parent || '') === parent;
    if (key === null || (!same(i - 1) && !same(i + 1))) {
      rows.push(l);
      continue;
    }
    if (!same(i - 1)) {
      const base = (parent ? parent + '/' : '') + key;
      const n = (starts.get(base) || 0) + 1;
      starts.set(base, n);
      id = n > 1 ? `${base}~${n}` : base;
      let count = 0;
      while (same(i + count)) count++;
      rows.push({group: id, name: key, depth: l.depth || 0, count, collapsed: isCollapsed(id)});
    }
    if (!isCollapsed(id) || l.path === opts.selected) rows.push({...l, depth: (l.depth || 0) + 1, group: undefined, inGroup: id});
  }
  return rows;
}

/**
 * The step to show when a series lacks `step` (the budget thinned its
 * images): the latest of `steps` before it, else the first after it, else null.
 */
export function nearestShown(steps, step) {
  let before = null;
  let after = null;
  for (const s of steps) {
    if (s <= step && (before === null || s > before)) before = s;
    if (s > step && (after === null || s < after)) after = s;
  }
  return before !== null ? before : after;
}

/**
 * Whether a step's image info (GET /info) holds an image of `probe`: the
 * budget may draw fewer probes at some epochs than the run has. Filters
 * have one image whatever the probe.
 */
export function probeDrawn(info, kind, probe) {
  return kind === 'filters' || (probe >= 0 && probe < ((info && info.probes) || []).length);
}

/**
 * The notice of a cell whose probe has no image at `step`, where the step's
 * images hold `drawn` probes; `plan` (GET /plan of the step, or null) says why.
 */
export function undrawnProbeText(step, probe, drawn, plan) {
  const which = drawn === 1 ? 'only probe 0 is drawn' : drawn > 1 ? `only probes 0–${drawn - 1} are drawn` : 'no probe is drawn';
  const why = plan && plan.note ? ` (${plan.note})` : '';
  return `No image of probe ${probe} at epoch ${step}: ${which} there${why}.`;
}

/**
 * Why a step's plan record (GET /plan) left `layer`'s `kind` images out, or
 * null when it does not say.
 */
export function planReason(plan, layer, kind) {
  if (!plan) return null;
  for (const [reason, layers] of Object.entries(plan.no_images || {})) {
    if (layers.includes(layer)) return reason;
  }
  if (kind === 'filters' && (plan.images || []).includes(layer) && !(plan.filters || []).includes(layer)) {
    return 'the kernel is frozen and unchanged since it was last drawn';
  }
  return null;
}

/**
 * Why a run has no class view of `kind` to show: the reason the plan of
 * the shown epoch gives (the budget deferred it there, say), else the
 * configuration's status (unavailable for this model, or a note written
 * when training started); null when neither says.
 */
export function classViewWhy(kind, plan, status) {
  const entry = plan && plan.class_views ? plan.class_views[kind] : null;
  if (entry && entry.reason) return `None up to epoch ${plan.step}: ${entry.reason}.`;
  if (status && status.reason) return status.reason;
  if (status && status.note) return `None yet: ${status.note}.`;
  return null;
}

/**
 * A run's logged steps in a few words: "epochs 0–2" for a 2-epoch fit (epoch
 * 0 is the state before training), "epochs 0–100 (26 logged)" when only
 * some epochs were logged.
 */
export function epochSpan(steps) {
  const list = (steps || []).map((s) => (typeof s === 'number' ? s : s.step));
  if (!list.length) return 'no epochs yet';
  const first = list[0];
  const last = list[list.length - 1];
  if (list.length === 1) return `epoch ${first}`;
  const gaps = last - first + 1 !== list.length;
  return `epochs ${first}–${last}${gaps ? ` (${list.length} logged)` : ''}`;
}

/** A byte count the way the plan's notes write it (plan._size): "38.4 KB", "1.38 MB". */
export function formatSize(bytes) {
  for (const [unit, f] of [['GB', 1e9], ['MB', 1e6], ['KB', 1e3]]) {
    if (bytes >= f) return `${+(bytes / f).toFixed(2)} ${unit}`;
  }
  return `${Math.round(bytes)} B`;
}

/**
 * What LayerView itself cost up to a step, from the step's plan record
 * (GET /plan): `{text, over}`, or null when the record has no cost.
 *
 * The time share is that of the whole training so far (the account the
 * budget keeps, see docs/format.md): what LayerView had spent before the
 * step plus the step's own hooks and writer CPU, over the epochs trained.
 * `over` names the bounds the step went past. Statistics are never thinned,
 * so on a model whose probe pass alone takes more than the time budget the
 * share stays above it, and the text says so rather than leave it silent.
 */
export function costLine(plan) {
  const cost = plan && plan.cost;
  if (!cost) return null;
  const budget = plan.budget || {};
  const parts = [];
  const over = [];
  const own = (cost.hook_seconds || 0) + (cost.writer_cpu_seconds || 0);
  if (cost.trained_seconds > 0) {
    const share = ((cost.spent_seconds || 0) + own) / cost.trained_seconds;
    let text = `${(100 * share).toFixed(1)}% of training time so far`;
    if (budget.time_share) {
      text += ` (budget ${+(100 * budget.time_share).toPrecision(3)}%)`;
      if (share > budget.time_share) over.push('time');
    }
    parts.push(text);
  }
  if (typeof cost.bytes === 'number') {
    let text = `${formatSize(cost.bytes)} at this epoch`;
    if (budget.bytes_per_epoch) {
      text += ` (budget ${formatSize(budget.bytes_per_epoch)})`;
      if (cost.bytes > budget.bytes_per_epoch) over.push('bytes');
    }
    parts.push(text);
  }
  if (!parts.length) return null;
  let text = `LayerView: ${parts.join(', ')}`;
  if (over.length) {
    const noImages = plan.cadence === 0 || (plan.images && plan.images.length === 0);
    text += `. Over its ${over.join(' and ')} budget${noImages ? ' with no images at this epoch: the probe pass' +
      ' and the statistics, which are never thinned, cost more than the budget allows here' : ''}.`;
  }
  return {text, over};
}

/**
 * What a cell in a difference mode compares with: `{run, step}`, or
 * `{error}` when there is nothing to compare. `drawn`: the steps of the
 * cell's series; `reference`: the first selected run (for `run` mode).
 */
export function diffReference(mode, run, step, drawn, reference) {
  if (mode === 'prev') {
    const before = drawn.filter((s) => s < step);
    return before.length ? {run, step: before[before.length - 1]} : {error: `no epoch before ${step} to compare with`};
  }
  if (mode === 'first') {
    return drawn.length && drawn[0] < step ? {run, step: drawn[0]} : {error: `epoch ${step} is the first one`};
  }
  if (mode === 'run') {
    if (!reference || reference === run) return {error: 'this is the reference run', reference: true};
    return {run: reference, step};
  }
  return {error: 'no difference mode'};
}

/** Whether two /info layouts tile the same way, so that their pixels compare. */
export function sameLayout(a, b) {
  return ['layout', 'shown', 'rows', 'cols', 'tile_w', 'tile_h', 'gap', 'scale'].every((k) => a[k] === b[k]);
}

/** The drawn inputs of a probes record (GET /probes); version 3 logs name one at most. */
export function drawnInputs(info) {
  if (Array.isArray(info && info.drawn_inputs)) return info.drawn_inputs;
  return info && info.drawn_input !== null && info.drawn_input !== undefined ? [info.drawn_input] : [];
}

/**
 * Which drawn probe input to show beside a layer: the first drawn input
 * (in the probes info's order) that the layer's output depends on, so the
 * second call of a siamese encoder sits beside the right image; the first
 * drawn input when the layer names none (older logs, subclassed models) or
 * depends on no drawn input; null when no input is drawn.
 */
export function shownInput(info, layer) {
  const drawn = drawnInputs(info);
  if (!drawn.length) return null;
  const reached = layer && Array.isArray(layer.inputs) ? layer.inputs : [];
  return drawn.find((name) => reached.includes(name)) ?? drawn[0];
}

/**
 * The configuration record (GET /config's `layers[]`) behind a series path:
 * the layer of that path, or the layer one of whose outputs it is (a shared
 * layer's further call `shared@2`, an RNN's state `lstm:1`); null if none.
 */
export function configLayerOf(config, path) {
  const layers = (config && config.layers) || [];
  return layers.find((l) => l.path === path)
    ?? layers.find((l) => (l.outputs || []).some((o) => o.path === path)) ?? null;
}

/**
 * Which model inputs a layer's outputs depend on (the configuration's
 * `outputs[].inputs`), in a line for its configuration card: one list when
 * every call sees the same inputs, else one per call ("encoder/conv: left ·
 * encoder/conv@2: right"). Null for single-input models and when the
 * configuration does not say.
 */
export function inputsText(layer) {
  const outs = ((layer && layer.outputs) || []).filter((o) => Array.isArray(o.inputs));
  const names = new Set(outs.flatMap((o) => o.inputs));
  if (!outs.length || names.size < 2) return null;
  const lists = outs.map((o) => (o.inputs.length ? o.inputs.join(', ') : 'none'));
  if (lists.every((t) => t === lists[0])) return lists[0];
  return outs.map((o, i) => `${o.path}: ${lists[i]}`).join(' · ');
}

/**
 * The input whose values stand beside a layer that depends on no drawn
 * input (a tabular branch of a model that also takes images): the first it
 * depends on; null when the layer depends on a drawn input, or does not say.
 */
export function undrawnInput(info, layer) {
  const reached = layer && Array.isArray(layer.inputs) ? layer.inputs : [];
  const drawn = drawnInputs(info);
  if (!reached.length || reached.some((name) => drawn.includes(name))) return null;
  return reached[0];
}

/**
 * A probe that is not drawn, in a line: its first input's first values
 * (integers, such as token ids, as they are; other numbers to two decimals),
 * or (text inputs) its first string, shortened.
 */
export function probeSummary(probe, input) {
  const inputs = (probe && probe.inputs) || {};
  const first = input !== undefined && input !== null && inputs[input] ? inputs[input] : Object.values(inputs)[0];
  if (!first) return '';
  if (first.text) {
    const text = first.text.join(' | ');
    return text.length > 120 ? `${text.slice(0, 119)}…` : text;
  }
  const whole = /^u?int|^bool/.test(first.dtype || '');
  return (first.values || []).slice(0, 6).map((v) => (whole ? String(v) : v.toFixed(2))).join(' ');
}

/**
 * Whether attribution maps (their GET /info record) are drawn over the
 * picture of `input`, `first` when it is the first drawn input: the input
 * their info names (a model of several inputs), else the first drawn one.
 */
export function attributionFor(info, input, first) {
  const named = info && typeof info.input === 'string' ? info.input : null;
  return named === null ? Boolean(first) : named === input;
}
