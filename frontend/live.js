// Live updates: polls GET /runs and also refreshes when TensorBoard's host
// page announces a data reload (its plugin message channel).

export const POLL_MS = 3000;

/** Starts polling; calls panel.setRuns only when the answer changed. */
export function startLive(panel, fetchRuns, pollMs = POLL_MS) {
  let last = null;
  let timer = null;
  let busy = false;
  const poll = async () => {
    clearTimeout(timer);
    if (busy) return;
    busy = true;
    try {
      const data = await fetchRuns();
      const text = JSON.stringify(data.runs);
      if (text !== last) {
        last = text;
        panel.setRuns(data.runs, data.read_ahead);
      }
      panel.clearError();
    } catch (err) {
      panel.showError(err);
    } finally {
      busy = false;
      timer = setTimeout(poll, document.hidden ? pollMs * 4 : pollMs);
    }
  };
  listenToHost(poll);
  poll();
  return {poll, stop: () => clearTimeout(timer)};
}

function listenToHost(onReload) {
  if (window.parent === window || typeof MessageChannel === 'undefined') return;
  try {
    const channel = new MessageChannel();
    channel.port1.onmessage = (event) => {
      const msg = event.data;
      if (!msg || typeof msg !== 'object') return;
      if (msg.type === 'experimental.DataReloaded' || msg.type === 'experimental.RunsChanged') onReload();
    };
    window.parent.postMessage('experimental.bootstrap', '*', [channel.port2]);
  } catch (err) {
    // Not inside TensorBoard (or a host without the channel): polling suffices.
  }
}
