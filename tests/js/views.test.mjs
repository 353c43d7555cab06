// Unit tests of the panel's prediction lines (node --test); no DOM is touched.
import assert from 'node:assert/strict';
import {test} from 'node:test';

import {nameParts, predictionCorrect, predictionText, unbrokenNumbers} from '../../frontend/views.js';

const box = {type: 'values', shape: [4], values: [0.1, 0.2, 0.3, 0.4]};
const cls = {type: 'classes', kind: 'probabilities', top: [[2, 0.7], [0, 0.2], [1, 0.1]], predicted: 2};

test('predictionCorrect judges the first output that predicts a class, after a regression head', () => {
  assert.equal(predictionCorrect({outputs: {box, cls}, label: {value: 2, class: 2}}), true);
  assert.equal(predictionCorrect({outputs: {box, cls}, label: {value: 0, class: 0}}), false);
  assert.equal(predictionCorrect({outputs: {box}, label: {value: 0, class: 0}}), null);
  assert.equal(predictionCorrect({outputs: {cls}}), null);
});

test('predictionText shows a regression head as values and the classifier as classes', () => {
  assert.equal(predictionText({outputs: {box, cls}, label: {value: 2, class: 2}}, ['a', 'b', 'c']),
    'box: 0.100, 0.200, 0.300, 0.400\ncls: c 70%, a 20%, b 10%\ntrue: 2');
});

const tags = {type: 'classes', kind: 'multilabel', threshold: 0.5, top: [[2, 0.9], [0, 0.6], [1, 0.1]],
  predicted_set: [0, 2], predicted_names: ['a', 'c'], names: ['c', 'a', 'b']};

test('predictionCorrect compares a multi-label prediction with the label as sets', () => {
  assert.equal(predictionCorrect({outputs: {tags}, label: {value: null, classes: [0, 2]}}), true);
  assert.equal(predictionCorrect({outputs: {tags}, label: {value: null, classes: [0]}}), false);
  assert.equal(predictionCorrect({outputs: {tags}, label: {value: null, classes: [0, 1]}}), false);
  assert.equal(predictionCorrect({outputs: {tags}, label: {value: null}}), null);
  // one tag is also a class, but the tagger is judged on the whole set
  assert.equal(predictionCorrect({outputs: {tags}, label: {value: null, class: 2, classes: [2]}}), false);
});

test('predictionText shows the predicted and the true set of a tagger, and no true line without a label value', () => {
  assert.equal(predictionText({outputs: {tags}, label: {value: null, classes: [0, 2], names: ['a', 'c']}}),
    '{a, c} · c 90%, a 60%, b 10%\ntrue: {a, c}');
  const none = {...tags, predicted_set: [], predicted_names: []};
  assert.equal(predictionText({outputs: {none}, label: {value: null, classes: []}}, ['a', 'b', 'c']),
    '{} · c 90%, a 60%, b 10%\ntrue: {}');
  assert.equal(predictionText({outputs: {box}, label: {value: null}}), '0.100, 0.200, 0.300, 0.400');
  // a target vector or a mask: its first values, as its prediction shows them
  assert.equal(predictionText({outputs: {box}, label: {value: null, shape: [4], values: [0, 0.25, 1, 1]}}),
    '0.100, 0.200, 0.300, 0.400\ntrue: 0, 0.250, 1.000, 1.000');
  assert.equal(predictionText({outputs: {box}, label: {value: null, shape: [2, 3], values: [0, 1, 2, 3, 1, 0]}}),
    '0.100, 0.200, 0.300, 0.400\ntrue: 0, 1.000, 2.000, 3.000, …');
  // one tag: a set of one for a tagger, a class for a classifier
  const oneTag = {value: null, class: 0, name: 'a', classes: [0], names: ['a']};
  assert.equal(predictionText({outputs: {tags}, label: oneTag}), '{a, c} · c 90%, a 60%, b 10%\ntrue: {a}');
  assert.equal(predictionText({outputs: {cls}, label: oneTag}), '2 70%, 0 20%, 1 10%\ntrue: a');
});

test('labels given per output: each follows its output, and the probe is right when every judged output is', () => {
  const animal = {type: 'classes', kind: 'probabilities', top: [[1, 0.6], [0, 0.4]], predicted: 1, names: ['dog', 'cat'],
    label: {value: 1, class: 1, name: 'dog'}};
  const indoor = {type: 'classes', kind: 'probabilities', top: [[0, 0.7], [1, 0.3]], predicted: 0, label: {value: 1, class: 1}};
  const size = {type: 'values', shape: [1], values: [2.5], label: {value: 3, class: undefined}};
  const entry = {outputs: {animal, indoor, size}, label: animal.label};
  assert.equal(predictionText(entry, ['cat', 'dog']),
    'animal: dog 60%, cat 40% · true: dog\nindoor: 0 70%, 1 30% · true: 1\nsize: 2.500 · true: 3.000');
  assert.equal(predictionCorrect(entry), false);
  assert.equal(predictionCorrect({outputs: {animal, size}, label: animal.label}), true);
  assert.equal(predictionCorrect({outputs: {size}}), null);
});

test('unbrokenNumbers keeps an exponent whole and leaves other hyphens and minus signs alone', () => {
  assert.equal(unbrokenNumbers('-0.002, 3.19e-4'), '-0.002, 3.19e\u20114');
  assert.equal(unbrokenNumbers('1.00e+5, -2.50e-12 · true: well-known'), '1.00e+5, -2.50e\u201112 · true: well-known');
});

test('nameParts cuts a nested run name after each slash and keeps every character', () => {
  assert.deepEqual(nameParts('fit/2026-12-03 10:00/seed#0'), ['fit/', '2026-12-03 10:00/', 'seed#0']);
  assert.deepEqual(nameParts('/a//b/'), ['/', 'a/', '/', 'b/']);
  assert.deepEqual(nameParts('cnn'), ['cnn']);
  assert.deepEqual(nameParts(''), ['']);
  for (const name of ['fit/2026-12-03 10:00/seed#0', '/a//b/', 'odd run <b>ü</b>', '.']) {
    assert.equal(nameParts(name).join(''), name);
  }
});

test('predictionText shows a segmentation map as the classes its positions take and the share right', () => {
  const mask = {type: 'positions', shape: [32, 32], classes: 3, top: [[2, 0.5], [0, 0.375], [1, 0.125]],
    names: ['car', 'sky', 'road'], accuracy: 0.71};
  assert.equal(predictionText({outputs: {mask}, label: {value: null, values: [0, 2, 2]}}),
    'per position (32×32): car 50%, sky 38%, road 13% · 71% right');
  const unlabelled = {type: 'positions', shape: [12], classes: 5, top: [[4, 1]]};
  assert.equal(predictionText({outputs: {tags: unlabelled}}, ['a', 'b', 'c', 'd', 'e']), 'per position (12): e 100%');
  assert.equal(predictionCorrect({outputs: {mask}, label: {value: null, values: [0, 2, 2]}}), null);
});
