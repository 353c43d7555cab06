// Data access for the Layer View panel. Every function here maps to one route
// of docs/http_api.md; URLs are relative so that --path_prefix and
// /experiment/<id>/ deployments work unchanged. Nothing here caches: the
// caches are model.js's.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null) q.set(k, String(v));
  }
  return q.toString();
}

export function routeUrl(route, params = {}) {
  const q = query(params);
  return `./${route}${q ? '?' + q : ''}`;
}

async function getJson(route, params) {
  let resp;
  try {
    // 'no-cache': always asked again, and answered 304 where the answer still has the ETag the browser holds.
    resp = await fetch(routeUrl(route, params), {cache: 'no-cache'});
  } catch (err) {
    throw new ApiError(`Cannot reach TensorBoard (${err.message})`, 0);
  }
  if (!resp.ok) {
    const text = (await resp.text()).trim();
    throw new ApiError(text || `${route}: HTTP ${resp.status}`, resp.status);
  }
  return resp.json();
}

/** GET /runs: every run with its layers in model order. */
export const fetchRuns = () => getJson('runs');
/** GET /config: model and layer configuration of a run. */
export const fetchConfig = (run) => getJson('config', {run});
/** GET /steps: steps and wall times of one series. */
export const fetchSteps = (run, layer, kind) => getJson('steps', {run, layer, kind});
/** GET /info: layout and tile statistics of one image step (`probes[i]`: one array per statistic). */
export const fetchInfo = (run, layer, kind, step) => getJson('info', {run, layer, kind, step});
/** GET /ranges: per-tile ranges over all steps, for fixed normalisation. */
export const fetchRanges = (run, layer, kind) => getJson('ranges', {run, layer, kind});
/** GET /probes: the probe inputs. */
export const fetchProbes = (run) => getJson('probes', {run});
/** GET /predictions: model outputs for each probe at a step. */
export const fetchPredictions = (run, step) => getJson('predictions', {run, step});

/** GET /plan: what a step logged, and why not the rest. */
export const fetchPlan = (run, step) => getJson('plan', {run, step});
/** GET /stats: per-channel statistics of a step (of one layer when `layer` is given). */
export const fetchStats = (run, step, layer) => getJson('stats', {run, step, layer});

/** GET /health: unit problems of a run, or (with layer and stat) a channel x step matrix. */
export const fetchHealth = (run, layer, stat) => getJson('health', {run, layer, stat});

/** URL of GET /image (PNG, cached by the browser). */
export const imageUrl = (run, layer, kind, step, probe) =>
  routeUrl('image', {run, layer, kind, step, probe});
/** URL of GET /probe_image (PNG); `input` names a drawn input other than the first. */
export const probeImageUrl = (run, probe, input) => routeUrl('probe_image', {run, probe, input});
