// Unit tests of the panel's pure state logic (node --test).
import assert from 'node:assert/strict';
import {test} from 'node:test';

import {
  attributionFor, classViewWhy, configLayerOf, epochSpan, inputsText, undrawnInput, alignLayers, decodeState, defaultState, encodeState, filterLayers, filterRuns, textMatcher, gridSteps, hashParam, layerRows, moveStep, assignColours,
  blockKey, blockKeys, hasDefaultName, kerasDefaultName, costLine, diffReference, firstProblem, formatSize, problemCell, unitLines, nearestShown, ownHashState, planReason, probeDrawn, probeSummary, undrawnProbeText, sameLayout, shownInput, snapStep, unionSteps, withHashParam,
} from '../../frontend/state.js';

test('encodeState/decodeState round-trip every field, names with odd characters included', () => {
  const s = {...defaultState(), runs: ['a b', 'x&y=<b>ü</b>', 'c/d'], layer: 'enc/<img src=x>', step: 7,
    follow: false, view: 'filters', probe: -1, norm: 'fixed', cmap: 'magma', zoom: 4};
  assert.deepEqual(decodeState(encodeState(s)), s);
});

test('following the latest epoch leaves the step out of the URL', () => {
  const s = {...defaultState(), runs: ['r'], step: 5, follow: true};
  assert.equal(new URLSearchParams(encodeState(s)).has('step'), false);
  assert.equal(decodeState(encodeState(s)).follow, true);
});

test('decodeState falls back to defaults on malformed values', () => {
  const s = decodeState('#view=evil&norm=x&cmap=jet&zoom=5&probe=abc&step=-3');
  const d = defaultState();
  assert.equal(s.view, d.view);
  assert.equal(s.norm, d.norm);
  assert.equal(s.cmap, d.cmap);
  assert.equal(s.zoom, d.zoom);
  assert.equal(s.probe, 0);
  assert.equal(s.step, null);
  assert.equal(s.follow, true);
});

test('unionSteps, snapStep and moveStep work on the sorted union of steps', () => {
  const steps = unionSteps([{steps: [{step: 0}, {step: 2}, {step: 4}]}, {steps: [{step: 1}, {step: 4}]}]);
  assert.deepEqual(steps, [0, 1, 2, 4]);
  assert.equal(snapStep(steps, null), 4);
  assert.equal(snapStep(steps, 3), 2);
  assert.equal(snapStep([], 3), null);
  assert.equal(moveStep(steps, 2, 1), 4);
  assert.equal(moveStep(steps, 4, 1), 4);
  assert.equal(moveStep(steps, 0, -1), 0);
});

test('alignLayers keeps the first run order, adds layers of other runs, records depth', () => {
  const runs = [
    {run: 'a', layers: [{path: 'conv1', name: 'conv1', class: 'Conv2D', parent: '', kinds: {activations: {}}, output_shape: [4, 4, 2]},
      {path: 'enc/d', name: 'd', class: 'Dense', parent: 'enc', kinds: {filters: {}}}]},
    {run: 'b', layers: [{path: 'conv1', name: 'conv1', class: 'Conv2D', parent: '', kinds: {filters: {}}},
      {path: 'head', name: 'head', class: 'Dense', parent: '', kinds: {}}]},
  ];
  const layers = alignLayers(runs);
  assert.deepEqual(layers.map((l) => l.path), ['conv1', 'enc/d', 'head']);
  assert.deepEqual([...layers[0].runs], ['a', 'b']);
  assert.deepEqual([...layers[0].kinds].sort(), ['activations', 'filters']);
  assert.equal(layers[1].depth, 1);
  assert.equal(layers[1].name, 'd');
  assert.deepEqual(filterLayers(layers, 'DENSE').map((l) => l.path), ['enc/d', 'head']);
  assert.deepEqual(filterLayers(layers, ' ').length, 3);
  assert.deepEqual(filterLayers(layers, '^(conv|head)').map((l) => l.path), ['conv1', 'head']);
});

test('filter boxes take plain text or a regular expression, case-insensitive', () => {
  const runs = ['resnet50/lr=0.1', 'resnet50/lr=0.01', 'vgg16 (b)', 'mobilenet'].map((run) => ({run}));
  const names = (f) => filterRuns(runs, f).map((r) => r.run);
  assert.deepEqual(names(''), ['resnet50/lr=0.1', 'resnet50/lr=0.01', 'vgg16 (b)', 'mobilenet']);
  assert.deepEqual(names('RESNET'), ['resnet50/lr=0.1', 'resnet50/lr=0.01']);
  assert.deepEqual(names('^vgg|mobile'), ['vgg16 (b)', 'mobilenet']);
  assert.deepEqual(names('0\\.01$'), ['resnet50/lr=0.01']);
  assert.deepEqual(names('lr=0.1'), ['resnet50/lr=0.1']);
  assert.deepEqual(names('(b)'), ['vgg16 (b)', 'mobilenet']);  // the text, or as a regex any 'b'
  assert.deepEqual(names('16 ('), ['vgg16 (b)']);  // not a regex: the text
  assert.deepEqual(names('nothing'), []);
  assert.equal(textMatcher('a.c')('abc'), true);
  assert.equal(textMatcher('a.c')('ABD'), false);
});

test('hashParam and withHashParam keep the host hash items', () => {
  assert.equal(hashParam('#tb_layerview&lv=a%3Db%26c', 'lv'), 'a=b&c');
  assert.equal(hashParam('#tb_layerview', 'lv'), null);
  assert.equal(withHashParam('#tb_layerview', 'lv', 'x=1&y'), '#tb_layerview&lv=x%3D1%26y');
  assert.equal(withHashParam('#tb_layerview&lv=old&z=1', 'lv', 'new'), '#tb_layerview&z=1&lv=new');
  assert.equal(hashParam(withHashParam('', 'lv', 'run=ü <b>'), 'lv'), 'run=ü <b>');
});

test('assignColours keeps existing colours and gives new runs unused ones', () => {
  const a = assignColours(new Map(), ['cnn_relu', 'cnn_tanh', 'mlp']);
  assert.equal(new Set(a.values()).size, 3);
  const b = assignColours(a, ['aaa_new', 'cnn_relu', 'cnn_tanh', 'mlp']);
  assert.equal(b.get('cnn_relu'), a.get('cnn_relu'));
  assert.ok(![...a.values()].includes(b.get('aaa_new')));
  assert.match(b.get('aaa_new'), /^#[0-9a-f]{6}$/);
});
test('gridSteps spreads at most max columns and keeps first, last and current', () => {
  const steps = [...Array(21).keys()];
  const g = gridSteps(steps, 7, 5);
  assert.equal(g.length, 5);
  assert.deepEqual([g[0], g[g.length - 1]], [0, 20]);
  assert.ok(g.includes(7));
  assert.deepEqual(gridSteps([0, 1, 2], 1, 5), [0, 1, 2]);
});

test('the attribution toggle is in the URL only when off', () => {
  const s = {...defaultState(), runs: ['r']};
  assert.equal(new URLSearchParams(encodeState(s)).has('attr'), false);
  assert.equal(decodeState(encodeState({...s, attr: false})).attr, false);
  assert.equal(decodeState(encodeState(s)).attr, true);
});

test('layerRows puts a header before the layers of each nested model', () => {
  const rows = layerRows([
    {path: 'in', parent: ''}, {path: 'enc/a', parent: 'enc'}, {path: 'enc/b', parent: 'enc'},
    {path: 'enc/blk/c', parent: 'enc/blk'}, {path: 'dec/d', parent: 'dec'}, {path: 'out', parent: ''},
  ]);
  assert.deepEqual(rows.map((r) => r.header ?? r.path),
    ['in', 'enc', 'enc/a', 'enc/b', 'enc/blk', 'enc/blk/c', 'dec', 'dec/d', 'out']);
  assert.deepEqual(rows.filter((r) => r.header).map((r) => r.depth), [0, 1, 0]);
});

test('probeDrawn tells the probes a step drew from the ones the budget left out', () => {
  const info = {probes: [{min: [0]}, {min: [1]}]};
  assert.equal(probeDrawn(info, 'activations', 0), true);
  assert.equal(probeDrawn(info, 'activations', 1), true);
  assert.equal(probeDrawn(info, 'activations', 2), false);
  assert.equal(probeDrawn(info, 'activations', -1), false);
  assert.equal(probeDrawn({}, 'activations', 0), false);
  assert.equal(probeDrawn({probes: [{}]}, 'filters', 5), true);
});

test('undrawnProbeText names the drawn probes and the plan note', () => {
  const plan = {note: 'images thinned to stay within the 5% time budget: 8 channels, 1 probe, 256 pixels per tile'};
  assert.equal(undrawnProbeText(4, 3, 1, plan),
    'No image of probe 3 at epoch 4: only probe 0 is drawn there (images thinned to stay within the 5% time ' +
    'budget: 8 channels, 1 probe, 256 pixels per tile).');
  assert.equal(undrawnProbeText(2, 5, 4, null), 'No image of probe 5 at epoch 2: only probes 0–3 are drawn there.');
  assert.equal(undrawnProbeText(2, 0, 0, {note: ''}), 'No image of probe 0 at epoch 2: no probe is drawn there.');
});

test('nearestShown picks the latest earlier step, else the first later one', () => {
  assert.equal(nearestShown([0, 4, 8], 7), 4);
  assert.equal(nearestShown([0, 4, 8], 8), 8);
  assert.equal(nearestShown([4, 8], 2), 4);
  assert.equal(nearestShown([], 2), null);
});

test('planReason finds the reason a plan gives for a layer, and frozen filters', () => {
  const plan = {images: ['a', 'b'], filters: ['a'], no_images: {'images every 3 logged epochs': ['c', 'd']}};
  assert.equal(planReason(plan, 'd', 'activations'), 'images every 3 logged epochs');
  assert.equal(planReason(plan, 'b', 'filters'), 'the kernel is frozen and unchanged since it was last drawn');
  assert.equal(planReason(plan, 'a', 'activations'), null);
  assert.equal(planReason(null, 'a', 'activations'), null);
});

test('formatSize writes sizes as the plan notes do', () => {
  assert.equal(formatSize(2000000), '2 MB');
  assert.equal(formatSize(1376000), '1.38 MB');
  assert.equal(formatSize(38400), '38.4 KB');
  assert.equal(formatSize(512), '512 B');
  assert.equal(formatSize(2.5e9), '2.5 GB');
});

test('costLine gives the share of training so far and the bytes, against the budget', () => {
  const plan = {cadence: 1, images: ['a'], budget: {time_share: 0.05, bytes_per_epoch: 2000000},
    cost: {hook_seconds: 0.2, writer_cpu_seconds: 0.05, bytes: 1376000, trained_seconds: 20, spent_seconds: 0.55}};
  assert.deepEqual(costLine(plan), {
    text: 'LayerView: 4.0% of training time so far (budget 5%), 1.38 MB at this epoch (budget 2 MB)', over: []});
  // Before training (step 0) nothing was trained yet: bytes only.
  const first = {...plan, cost: {...plan.cost, trained_seconds: 0, spent_seconds: 0}};
  assert.equal(costLine(first).text, 'LayerView: 1.38 MB at this epoch (budget 2 MB)');
  // Without a budget, the figures alone.
  assert.equal(costLine({...plan, budget: null}).text,
    'LayerView: 4.0% of training time so far, 1.38 MB at this epoch');
  assert.equal(costLine({step: 3}), null);
  assert.equal(costLine(null), null);
});

test('costLine says when the statistics alone take LayerView over its budget', () => {
  const plan = {cadence: 0, images: [], budget: {time_share: 0.05, bytes_per_epoch: 2000000},
    cost: {hook_seconds: 0.2, writer_cpu_seconds: 0.05, bytes: 2100000, trained_seconds: 11, spent_seconds: 0.45}};
  const line = costLine(plan);
  assert.deepEqual(line.over, ['time', 'bytes']);
  assert.equal(line.text, 'LayerView: 6.4% of training time so far (budget 5%), 2.1 MB at this epoch (budget 2 MB).' +
    ' Over its time and bytes budget with no images at this epoch: the probe pass and the statistics,' +
    ' which are never thinned, cost more than the budget allows here.');
  const imaged = costLine({...plan, cadence: 1, images: ['a'], cost: {...plan.cost, bytes: 1000}});
  assert.deepEqual(imaged.over, ['time']);
  assert.match(imaged.text, /\. Over its time budget\.$/);
});

test('blockKey cuts a layer name after its first token with a digit', () => {
  assert.equal(blockKey('block_3_expand_BN'), 'block_3');
  assert.equal(blockKey('conv2_block1_1_conv'), 'conv2');
  assert.equal(blockKey('block4_pool'), 'block4');
  assert.equal(blockKey('expanded_conv_depthwise'), null);
  assert.equal(blockKey('Conv1'), null);
});

test('long layer lists group consecutive layers of a block, and collapsed groups hide all but the selection', () => {
  const layers = [];
  for (let b = 1; b <= 10; b++) {
    for (const part of ['expand', 'bn', 'relu']) layers.push({path: `block_${b}_${part}`, name: `block_${b}_${part}`, parent: ''});
  }
  layers.push({path: 'out', name: 'out', parent: ''});
  const rows = layerRows(layers);
  assert.equal(rows.filter((r) => r.group).length, 10);
  assert.deepEqual(rows.slice(0, 2).map((r) => r.group ?? r.path), ['block_1', 'block_1_expand']);
  assert.equal(rows[0].count, 3);
  assert.equal(rows[1].depth, 1);
  const folded = layerRows(layers, {collapsed: new Set(['block_2']), selected: 'block_2_bn'});
  const b2 = folded.findIndex((r) => r.group === 'block_2');
  assert.equal(folded[b2].collapsed, true);
  assert.deepEqual(folded.slice(b2 + 1, b2 + 3).map((r) => r.group ?? r.path), ['block_2_bn', 'block_3']);
  assert.equal(layerRows(layers.slice(0, 6)).filter((r) => r.group).length, 0); // short lists stay flat
  // Block keys made earlier (the panel keeps them per layer list) give the same rows.
  const opts = {collapsed: new Set(['block_2']), selected: 'block_2_bn'};
  assert.deepEqual(layerRows(layers, {...opts, keys: blockKeys(layers)}), folded);
  const given = layerRows(layers, {keys: layers.map((l) => (l.path === 'out' ? null : 'all'))});
  assert.deepEqual(given.filter((r) => r.group).map((r) => [r.group, r.count]), [['all', 30]]);
});

test('kerasDefaultName and hasDefaultName tell the names Keras makes up', () => {
  assert.equal(kerasDefaultName('ReLU'), 're_lu');
  assert.equal(kerasDefaultName('Conv2DTranspose'), 'conv2d_transpose');
  assert.equal(kerasDefaultName('GlobalAveragePooling2D'), 'global_average_pooling2d');
  assert.equal(kerasDefaultName('Relu'), 'relu');
  assert.equal(hasDefaultName({name: 're_lu_7', cls: 'ReLU'}), true);
  assert.equal(hasDefaultName({name: 'add', cls: 'Add'}), true);
  assert.equal(hasDefaultName({name: 'multiply_3@2', cls: 'Multiply'}), true);
  assert.equal(hasDefaultName({name: 'add_block', cls: 'Add'}), false);
  assert.equal(hasDefaultName({name: 'expanded_conv_2_add', cls: 'Add'}), false);
  assert.equal(hasDefaultName({name: 're_lu_x', class: 'ReLU'}), false);
  assert.equal(hasDefaultName({name: 'conv', cls: undefined}), false);
});

test('a layer Keras named joins the block of the named layers around it, so MobileNetV3 blocks stay whole', () => {
  // MobileNetV3's blocks, with the unnamed ReLU layers and the x + 3.0, * (1 / 6) operations of its hard sigmoid.
  const layers = [{name: 'conv', cls: 'Conv2D'}, {name: 're_lu', cls: 'ReLU'}];
  for (let b = 1; b <= 12; b++) {
    layers.push({name: `expanded_conv_${b}_expand`, cls: 'Conv2D'}, {name: `re_lu_${2 * b}`, cls: 'ReLU'},
      {name: `expanded_conv_${b}_depthwise`, cls: 'DepthwiseConv2D'}, {name: `add_${b}`, cls: 'Add'},
      {name: `multiply_${b}`, cls: 'Multiply'}, {name: `expanded_conv_${b}_project`, cls: 'Conv2D'});
  }
  layers.push({name: 'activation_9', cls: 'Activation'}, {name: 'predictions', cls: 'Dense'});
  for (const l of layers) l.path = l.name;
  const keys = blockKeys(layers);
  assert.deepEqual(keys.slice(0, 8), [null, null, 'expanded_conv_1', 'expanded_conv_1', 'expanded_conv_1', 'expanded_conv_1',
    'expanded_conv_1', 'expanded_conv_1']);
  assert.deepEqual(keys.slice(-2), [null, null]);
  const groups = layerRows(layers).filter((r) => r.group);
  assert.equal(groups.length, 12);
  assert.deepEqual(groups.map((g) => g.count), Array(12).fill(6));
  assert.ok(groups.every((g) => !g.group.includes('~')));
  // Between two blocks, or under another parent, a made-up name joins neither.
  assert.deepEqual(blockKeys([{name: 'block_1_a'}, {name: 're_lu', cls: 'ReLU'}, {name: 'block_2_a'}]), ['block_1', null, 'block_2']);
  assert.deepEqual(blockKeys([{name: 'block_1_a', parent: ''}, {name: 'add', cls: 'Add', parent: 'enc'},
    {name: 'block_1_b', parent: ''}]), ['block_1', null, 'block_1']);
});

test('the standalone panel reads a TensorBoard-style hash and its own', () => {
  const state = encodeState({...defaultState(), runs: ['a b'], layer: 'conv1', step: 3, follow: false});
  assert.equal(ownHashState('#tb_layerview&lv=' + encodeURIComponent(state)), state);
  assert.equal(ownHashState('#' + state), state);
  assert.deepEqual(decodeState(ownHashState('#tb_layerview&lv=' + encodeURIComponent(state))).runs, ['a b']);
});

test('the Health view and its statistic are part of the URL state', () => {
  const s = {...defaultState(), runs: ['r'], view: 'health', hstat: 'sat'};
  assert.equal(decodeState(encodeState(s)).view, 'health');
  assert.equal(decodeState(encodeState(s)).hstat, 'sat');
  assert.equal(decodeState('view=health&hstat=bogus').hstat, 'active');
});

test('diffReference picks the previous or first drawn epoch, or the first run, and says when there is none', () => {
  assert.deepEqual(diffReference('prev', 'r', 8, [0, 4, 8], 'r'), {run: 'r', step: 4});
  assert.deepEqual(diffReference('prev', 'r', 0, [0, 4], 'r'), {error: 'no epoch before 0 to compare with'});
  assert.deepEqual(diffReference('first', 'r', 8, [0, 4, 8], 'r'), {run: 'r', step: 0});
  assert.deepEqual(diffReference('run', 'b', 8, [0, 8], 'a'), {run: 'a', step: 8});
  assert.equal(diffReference('run', 'a', 8, [0, 8], 'a').reference, true);
  assert.ok(sameLayout({layout: 'grid', shown: 2, rows: 1, cols: 2, tile_w: 3, tile_h: 3, gap: 1, scale: 1},
    {layout: 'grid', shown: 2, rows: 1, cols: 2, tile_w: 3, tile_h: 3, gap: 1, scale: 1, step: 5}));
  assert.ok(!sameLayout({shown: 2}, {shown: 3}));
});

test('probeSummary: a numeric probe by its first six values, a text probe by its strings, shortened', () => {
  assert.equal(probeSummary({inputs: {x: {values: [1, 2.345, 3, 4, 5, 6, 7]}}}), '1.00 2.35 3.00 4.00 5.00 6.00');
  assert.equal(probeSummary({inputs: {text: {dtype: 'string', text: ['the cat sat', '<b>x</b>']}}}), 'the cat sat | <b>x</b>');
  const long = probeSummary({inputs: {text: {text: ['a'.repeat(300)]}}});
  assert.equal(long.length, 120);
  assert.ok(long.endsWith('…'));
  assert.equal(probeSummary(undefined), '');
  // Token ids and other integers as they are, not as 13.00.
  assert.equal(probeSummary({inputs: {tokens: {dtype: 'int64', values: [13, 16, 0, 9]}}}), '13 16 0 9');
  assert.equal(probeSummary({inputs: {m: {dtype: 'uint8', values: [255, 0]}}}), '255 0');
  assert.equal(probeSummary({inputs: {x: {dtype: 'float32', values: [13, 0.5]}}}), '13.00 0.50');
});

test('shownInput: the first drawn input the layer depends on, else the first drawn one, else null', () => {
  const info = {drawn_input: 'left', drawn_inputs: ['left', 'right']};
  assert.equal(shownInput(info, {path: 'encoder/conv@2', inputs: ['right']}), 'right');
  assert.equal(shownInput(info, {path: 'diff', inputs: ['left', 'right']}), 'left');
  assert.equal(shownInput(info, {path: 'side_dense', inputs: ['side']}), 'left');
  assert.equal(shownInput(info, {path: 'x', inputs: null}), 'left');
  assert.equal(shownInput(info, null), 'left');
  // Logs of format version 3 name one drawn input and no inputs per layer.
  assert.equal(shownInput({drawn_input: 'image'}, {path: 'conv'}), 'image');
  assert.equal(shownInput({drawn_input: null}, {path: 'dense', inputs: ['x']}), null);
  assert.equal(shownInput({drawn_inputs: []}, {path: 'dense'}), null);
});

test('classViewWhy: the shown epoch\'s plan first, then the status of the configuration', () => {
  const plan = {step: 4, class_views: {maximization: {run: false, reason: 'deferred to stay within the 5% time budget: it takes about 2.8 s'}}};
  assert.equal(classViewWhy('maximization', plan, {available: true, note: 'waits until an epoch has been timed'}),
    'None up to epoch 4: deferred to stay within the 5% time budget: it takes about 2.8 s.');
  assert.equal(classViewWhy('backquery', plan, {available: false, reason: 'back-query is unavailable: a Conv2D'}),
    'back-query is unavailable: a Conv2D');
  assert.equal(classViewWhy('maximization', null, {available: true, note: 'waits until an epoch has been timed'}),
    'None yet: waits until an epoch has been timed.');
  assert.equal(classViewWhy('maximization', {step: 1, class_views: {maximization: {run: true, reason: null}}}, null), null);
});

test('epochSpan: the first and last logged epochs, and how many when some were skipped', () => {
  assert.equal(epochSpan([{step: 0}, {step: 1}, {step: 2}]), 'epochs 0–2');
  assert.equal(epochSpan([0, 4, 8, 12]), 'epochs 0–12 (4 logged)');
  assert.equal(epochSpan([{step: 3}]), 'epoch 3');
  assert.equal(epochSpan([]), 'no epochs yet');
});

test('inputsText: the inputs a layer depends on, per call when they differ, null for one input', () => {
  assert.equal(inputsText({outputs: [{path: 'encoder/conv', inputs: ['left']}, {path: 'encoder/conv@2', inputs: ['right']}]}),
    'encoder/conv: left · encoder/conv@2: right');
  assert.equal(inputsText({outputs: [{path: 'cat', inputs: ['left', 'side']}]}), 'left, side');
  assert.equal(inputsText({outputs: [{path: 'a', inputs: ['left']}, {path: 'a:1', inputs: ['left']}]}), null);
  assert.equal(inputsText({outputs: [{path: 'd', inputs: ['x']}]}), null);
  assert.equal(inputsText({outputs: [{path: 'd', inputs: null}]}), null);
  assert.equal(inputsText({outputs: [{path: 'c', inputs: []}, {path: 'c@2', inputs: ['a', 'b']}]}), 'c: none · c@2: a, b');
  assert.equal(inputsText(null), null);
});

test('configLayerOf: a further call or output of a layer finds the layer\'s record', () => {
  const cfg = {layers: [{path: 'encoder', outputs: []},
    {path: 'encoder/conv', outputs: [{path: 'encoder/conv'}, {path: 'encoder/conv@2'}]},
    {path: 'lstm', outputs: [{path: 'lstm'}, {path: 'lstm:1'}]}]};
  assert.equal(configLayerOf(cfg, 'encoder/conv@2').path, 'encoder/conv');
  assert.equal(configLayerOf(cfg, 'lstm:1').path, 'lstm');
  assert.equal(configLayerOf(cfg, 'encoder').path, 'encoder');
  assert.equal(configLayerOf(cfg, 'nope'), null);
  assert.equal(configLayerOf(null, 'x'), null);
});

test('a block name that recurs apart makes separate groups, each opened on its own', () => {
  const cell = (k) => [`sep_conv_1_left_${k}`, `sep_conv_1_right_${k}`, `normal_add_${k}`].map((name) => ({path: name, name}));
  const layers = [];
  for (let k = 0; k < 12; k++) layers.push(...cell(k));
  const rows = layerRows(layers, {expanded: new Set(['sep_conv_1~3'])});
  const groups = rows.filter((r) => r.group);
  assert.deepEqual(groups.slice(0, 3).map((g) => [g.group, g.count, g.collapsed]),
    [['sep_conv_1', 2, true], ['sep_conv_1~2', 2, true], ['sep_conv_1~3', 2, false]]);
  // Only the third run shows its layers.
  assert.deepEqual(rows.filter((r) => r.inGroup).map((r) => r.path), ['sep_conv_1_left_2', 'sep_conv_1_right_2']);
});

test('undrawnInput: a layer that sees only a tabular input stands beside its values, not another picture', () => {
  const info = {drawn_inputs: ['left', 'right'], inputs: ['left', 'right', 'side']};
  assert.equal(undrawnInput(info, {inputs: ['side']}), 'side');
  assert.equal(undrawnInput(info, {inputs: ['left', 'side']}), null);
  assert.equal(undrawnInput(info, {inputs: null}), null);
  assert.equal(undrawnInput({drawn_input: null}, {inputs: ['x']}), 'x');
  const probe = {inputs: {left: {values: [1]}, side: {values: [0.5, 0.25]}}};
  assert.equal(probeSummary(probe, 'side'), '0.50 0.25');
  assert.equal(probeSummary(probe), '1.00');
});

test('a Health table cell says how many units have a problem now and since when, or when it was first seen', () => {
  const l = {channels: 64, dead: 3, saturated: null, nonfinite: 0, since: {dead: 5}, first: {dead: 2, nonfinite: 4}};
  assert.equal(problemCell(l, 'dead'), '3 / 64 since 5');
  assert.equal(problemCell(l, 'saturated'), '–');
  assert.equal(problemCell(l, 'nonfinite'), '0 / 64 (first at 4)');
  assert.equal(problemCell({channels: 8, dead: 0, since: {}, first: {}}, 'dead'), '0 / 8');
  assert.equal(firstProblem(l), 2);
  assert.equal(firstProblem({since: {}, first: {}}), null);
});

test('unitLines lists the units with each problem, longest first, capped', () => {
  assert.deepEqual(unitLines({dead: [[1, 3], [5, 0], [7, 3]], saturated: null, nonfinite: []}),
    ['dead (3): channel 5 since 0, 1 since 3, 7 since 3']);
  const many = Array.from({length: 15}, (_, c) => [c, 0]);
  assert.deepEqual(unitLines({dead: [], saturated: many, nonfinite: [[2, 4]]}, 2),
    ['saturated (15): channel 0 since 0, 1 since 0, … and 13 more', 'NaN/Inf (1): channel 2 since 4']);
  assert.deepEqual(unitLines(undefined), []);
});

test('attribution maps go on the picture of the input they explain', () => {
  assert.equal(attributionFor({method: 'gradcam'}, 'image', true), true);
  assert.equal(attributionFor({method: 'gradcam'}, 'side', false), false);
  assert.equal(attributionFor({method: 'gradcam', input: 'right'}, 'left', true), false);
  assert.equal(attributionFor({method: 'gradcam', input: 'right'}, 'right', false), true);
});
