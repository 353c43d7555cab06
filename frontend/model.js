// The panel's model: every cache of data read from the plugin, and the
// read-ahead of neighbouring epochs. Immutable blobs (info JSON, images) are
// cached in api.js for the page's life; what changes with new epochs is keyed
// here by the run's version (its number of steps).

import * as api from './api.js';
import {memo} from './api.js';

/** Offsets of the epochs read ahead; the server sends its own (GET /runs `read_ahead`). */
const DEFAULT_READ_AHEAD = [1, -1, 2];

export class Model {
  constructor() {
    this.configs = new Map(); // run -> config promise
    this.probes = new Map(); // run -> probes promise
    this.ranges = new Map(); // key -> ranges promise
    this.seriesStepLists = new Map(); // key -> steps of one series
    this.healths = new Map(); // key -> health answers, per run version
    this.readAhead = DEFAULT_READ_AHEAD;
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

  /** GET /health of a run (or of one layer's statistic), per run version. */
  health(run, version, layer, stat) {
    return memo(this.healths, JSON.stringify([run, version, layer, stat]), () => api.fetchHealth(run, layer, stat));
  }

  /** Warms the caches with the neighbouring epochs each visible series holds. */
  prefetch(columns, steps, step) {
    const i = steps.indexOf(step);
    if (i < 0) return;
    for (const col of columns || []) {
      if (!col.layer) continue;
      for (const cell of col.cells) {
        const run = col.run.run;
        const layer = col.layer.path;
        this.seriesSteps(run, layer, cell.kind, col.run.steps.length).then((drawn) => {
          for (const d of this.readAhead) {
            const next = steps[i + d];
            if (next === undefined || !drawn.includes(next)) continue;
            api.loadImage(api.imageUrl(run, layer, cell.kind, next, cell.probe)).catch(() => {});
            api.fetchInfo(run, layer, cell.kind, next).catch(() => {});
          }
        }).catch(() => {});
      }
    }
  }
}
