// The panel's model: every cache of data read from the plugin, and the
// read-ahead of neighbouring epochs. Immutable blobs (info JSON, images) are
// cached in api.js for the page's life; what changes with new epochs is keyed
// here by the run's version (its number of steps).

import * as api from './api.js';
import {ApiError} from './api.js';
import {probeDrawn} from './state.js';

/** `map[key]`, filled with the promise `load()` returns; a failed load is forgotten so it is retried. */
export function memo(map, key, load) {
  if (!map.has(key)) {
    map.set(key, load().catch((err) => {
      map.delete(key);
      throw err;
    }));
  }
  return map.get(key);
}

// Blobs of a logged step never change: their JSON is kept for the page's life.
const immutable = new Map();
const once = (route, fetch) => (...args) => memo(immutable, JSON.stringify([route, ...args]), () => fetch(...args));

/** GET /info of one image step (cached: it never changes). */
export const fetchInfo = once('info', api.fetchInfo);
/** GET /predictions of a step (cached). */
export const fetchPredictions = once('predictions', api.fetchPredictions);
/** GET /plan of a step (cached). */
export const fetchPlan = once('plan', api.fetchPlan);

/**
 * The plan record of `run` (a GET /runs entry) at `step`, or null where it
 * has none: a run without plans, or one that did not log `step` (runs side
 * by side need not share epochs), is not asked at all.
 */
export function planAt(run, step) {
  if (!run.has_plan || step === null || !run.steps.some((x) => x.step === step)) return Promise.resolve(null);
  return fetchPlan(run.run, step).catch(() => null);
}
/** GET /stats of a step (cached). */
export const fetchStats = once('stats', api.fetchStats);

const images = new Map();
const MAX_IMAGES = 2000;

/** Loads (or returns the cached) decoded image at `url`. */
export function loadImage(url) {
  if (!images.has(url)) {
    const p = new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => {
        images.delete(url);
        reject(new ApiError(`image not available: ${url}`, 404));
      };
      img.src = url;
    });
    if (images.size >= MAX_IMAGES) images.delete(images.keys().next().value);
    images.set(url, p);
  }
  return images.get(url);
}

/** Decodes an image's pixels (RGBA bytes) through a scratch canvas. */
// Decoded pixels of the images drawn last.
const pixelCache = new Map();
export function pixelsOf(url, img) {
  let px = pixelCache.get(url);
  if (!px) {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext('2d', {willReadFrequently: true});
    ctx.drawImage(img, 0, 0);
    px = ctx.getImageData(0, 0, c.width, c.height);
    if (pixelCache.size > 600) pixelCache.delete(pixelCache.keys().next().value);
    pixelCache.set(url, px);
  }
  return px;
}


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
            fetchInfo(run, layer, cell.kind, next).then((info) => {
              if (probeDrawn(info, cell.kind, cell.probe)) return loadImage(api.imageUrl(run, layer, cell.kind, next, cell.probe));
              return null;
            }).catch(() => {});
          }
        }).catch(() => {});
      }
    }
  }
}
