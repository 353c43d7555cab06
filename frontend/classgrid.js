// The class x epoch grids of a run: activation maximisation, back-query and
// the units of the selected layer, one column per (sampled) epoch.

import * as api from './api.js';
import {classViewWhy, gridSteps, snapStep} from './state.js';
import {el, errorBanner} from './views.js';
import {fetchInfo, planAt} from './model.js';

export const CLASS_KIND_LABELS = {maximization: 'Activation maximisation', backquery: 'Back-query'};

/** The class x epoch grids of a run (activation maximisation, back-query, units of the layer). */
export function classViews(panel, run, body) {
  const views = run.class_views || {};
  for (const kind of ['maximization', 'backquery']) {
    const section = el('section', {class: 'class-view', 'data-kind': kind}, el('h4', {text: CLASS_KIND_LABELS[kind]}));
    body.append(section);
    if (!views[kind]) {
      const why = el('div', {class: 'placeholder', text: `No ${CLASS_KIND_LABELS[kind].toLowerCase()} in this run.`});
      section.append(why);
      const step = panel.currentStep();
      const plan = planAt(run, step);
      const config = run.has_config ? panel.model.config(run.run).catch(() => null) : Promise.resolve(null);
      Promise.all([plan, config]).then(([p, cfg]) => {
        const text = classViewWhy(kind, p, ((cfg && cfg.class_views) || {})[kind]);
        if (text) why.textContent = text;
      });
      continue;
    }
    section.append(epochGrid(panel, run, kind, null));
  }
  const layer = run.layers.find((l) => l.path === panel.state.layer);
  if (layer && layer.kinds.units) {
    body.append(el('section', {class: 'class-view', 'data-kind': 'units'},
      el('h4', {text: `Units of ${layer.path}`}), epochGrid(panel, run, 'units', layer.path)));
  }
}

/** A row-per-image x column-per-epoch grid of one series; rows are classes or units. */
export function epochGrid(panel, run, kind, layer) {
  const holder = el('div', {class: 'class-grid-holder', text: 'Loading…'});
  api.fetchSteps(run.run, layer, kind).then(async (res) => {
    const all = res.steps.map((x) => x.step);
    const steps = gridSteps(all, panel.currentStep());
    const current = snapStep(all, panel.currentStep());
    const info = await fetchInfo(run.run, layer, kind, steps[steps.length - 1]);
    const labels = info.units ? info.units.map((u) => `unit ${u}`) : info.classes.map((c, i) => info.names[i] ?? String(c));
    const table = el('table', {class: 'class-grid'});
    table.append(el('tr', {}, el('th', {text: `${info.units ? 'unit' : 'class'} \\ epoch`}),
      steps.map((st) => el('th', {class: st === current ? 'current' : '', text: String(st)}))));
    labels.forEach((label, i) => {
      table.append(el('tr', {}, el('th', {class: 'class-name', text: label}),
        steps.map((st) => el('td', {class: st === current ? 'current' : ''},
          el('img', {class: 'class-img', alt: `${label} at epoch ${st}`, title: `${label} · epoch ${st}`,
            src: api.imageUrl(run.run, layer, kind, st, i),
            onclick: () => panel.set({step: st, follow: false}, false)})))));
    });
    holder.replaceChildren(table);
  }).catch((err) => holder.replaceChildren(errorBanner(err.message)));
  return holder;
}
