// charts.js: the dashboard's charts as inline SVG built element by element
// (no chart library, no markup strings): a funnel of bars per channel and a
// timeline of sends. Each chart has a title and a description for screen
// readers, and the numbers are also in a table beside it.

import { s } from './dom.js';

const COLORS = { planned: '#9aa5b1', sent: '#3b82f6', delivered: '#10b981', read: '#0b5d4b', failed: '#dc2626',
  replied: '#a855f7', filed_after: '#f59e0b' };
const CHANNEL_COLORS = { whatsapp: '#25a244', sms: '#3b82f6', email: '#b45309', test: '#6b7280' };

export function color(key) {
  return COLORS[key] || CHANNEL_COLORS[key] || '#6b7280';
}

// Bars: one group per channel (its name above), one bar per stage with the
// stage's name on the left and the count after the bar.
export function funnelChart(rows, stages, labels, title) {
  const W = 640, rowH = 18, head = 20, gap = 10, left = 170, right = 50;
  const groupH = head + stages.length * rowH + gap;
  const H = Math.max(1, rows.length) * groupH + 4;
  const max = Math.max(1, ...rows.flatMap((r) => stages.map((k) => Number(r[k]) || 0)));
  const scale = (W - left - right) / max;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart funnel', 'aria-labelledby': 'funnel-t' },
    s('title', { id: 'funnel-t' }, title));
  rows.forEach((r, i) => {
    const y0 = i * groupH + 4;
    svg.append(s('text', { x: 0, y: y0 + 14, class: 'group' }, r.channel));
    stages.forEach((k, j) => {
      const v = Number(r[k]) || 0, y = y0 + head + j * rowH;
      svg.append(s('text', { x: left - 8, y: y + rowH - 7, class: 'axis', 'text-anchor': 'end' }, labels[k]));
      svg.append(s('rect', { x: left, y, width: Math.max(v * scale, v ? 2 : 0), height: rowH - 4, fill: color(k),
        dataset: { channel: r.channel, stage: k, value: v } }, s('title', {}, `${r.channel} ${labels[k]}: ${v}`)));
      svg.append(s('text', { x: left + v * scale + 4, y: y + rowH - 7, class: 'val' }, String(v)));
    });
  });
  return svg;
}

// Lines: one per series over time. points: [{at, key, value}]; series keys give colours.
export function timelineChart(points, title, fmtAt) {
  const W = 640, H = 220, left = 40, bottom = 30, top = 10, right = 10;
  const times = [...new Set(points.map((p) => p.at))].sort();
  const keys = [...new Set(points.map((p) => p.key))];
  const max = Math.max(1, ...points.map((p) => p.value));
  const x = (i) => left + (times.length < 2 ? (W - left - right) / 2 : i * (W - left - right) / (times.length - 1));
  const y = (v) => H - bottom - v * (H - top - bottom) / max;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart timeline', 'aria-labelledby': 'timeline-t' },
    s('title', { id: 'timeline-t' }, title),
    s('line', { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, class: 'axisline' }),
    s('line', { x1: left, y1: top, x2: left, y2: H - bottom, class: 'axisline' }),
    s('text', { x: left - 4, y: top + 8, class: 'axis', 'text-anchor': 'end' }, String(max)),
    s('text', { x: left - 4, y: H - bottom, class: 'axis', 'text-anchor': 'end' }, '0'));
  if (times.length) {
    svg.append(s('text', { x: left, y: H - 8, class: 'axis' }, fmtAt(times[0])));
    if (times.length > 1) svg.append(s('text', { x: W - right, y: H - 8, class: 'axis', 'text-anchor': 'end' }, fmtAt(times[times.length - 1])));
  }
  for (const k of keys) {
    const pts = times.map((at, i) => {
      const p = points.find((q) => q.at === at && q.key === k);
      return [x(i), y(p ? p.value : 0)];
    });
    svg.append(s('polyline', { points: pts.map((p) => p.join(',')).join(' '), fill: 'none', stroke: color(k),
      'stroke-width': 2, dataset: { series: k } }));
    for (const [px, py] of pts) svg.append(s('circle', { cx: px, cy: py, r: 3, fill: color(k) }));
  }
  keys.forEach((k, i) => {
    svg.append(s('rect', { x: W - right - 110, y: top + i * 16, width: 10, height: 10, fill: color(k) }));
    svg.append(s('text', { x: W - right - 96, y: top + i * 16 + 9, class: 'axis' }, k));
  });
  return svg;
}
