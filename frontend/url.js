// Where the panel's view state lives in the URL.

import {hashParam, ownHashState, withHashParam} from './state.js';

export const URL_KEY = 'lv';

/**
 * Where the view state lives in the URL. Inside TensorBoard it is mirrored
 * into the top page's hash (`#tb_layerview&lv=...`, which TensorBoard keeps)
 * so that a copied link or a reload reproduces the view; the panel opened on
 * its own keeps it in its own hash.
 */
export class UrlState {
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
    return ownHashState(location.hash);
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
