/* report.js: draws memprof's HTML report from the JSON object in
 * page's data element (id mp-data).  Embedded into the page at build time (embed.py);
 * plain ES2017, no library.
 *
 * Every string of the data (function and file names, argv, source lines)
 * comes from the profiled program and is inserted as text only
 * (textContent, text nodes, SVG text): never as markup.  Errors of this
 * script, rejected promises, console errors and blocked policy violations
 * are recorded in #mp-errors (and shown at the top of the page). */
'use strict';

(function () {
	var errorBox = document.getElementById('mp-errors');
	var errorBanner = null;

	function recordError(message) {
		var text = String(message);
		if (errorBox)
			errorBox.appendChild(document.createTextNode(text + '\n'));
		document.body.setAttribute('data-errors',
			String(Number(document.body.getAttribute('data-errors') || 0) + 1));
		if (errorBanner) {
			errorBanner.appendChild(document.createTextNode(' ' + text));
			errorBanner.hidden = false;
		}
	}

	window.addEventListener('error', function (e) {
		recordError('error: ' + e.message + ' (' + e.filename + ':' + e.lineno + ')');
	});
	window.addEventListener('unhandledrejection', function (e) {
		recordError('unhandled rejection: ' + e.reason);
	});
	document.addEventListener('securitypolicyviolation', function (e) {
		recordError('blocked by the page\'s policy: ' + e.violatedDirective + ' ' + e.blockedURI);
	});
	var consoleError = console.error;
	console.error = function () {
		recordError('console.error: ' + Array.prototype.join.call(arguments, ' '));
		return consoleError.apply(console, arguments);
	};

	/* ---- helpers ---------------------------------------------------- */

	var SVG = 'http://www.w3.org/2000/svg';

	function el(tag, attrs) {
		var e = document.createElement(tag);
		setAttrs(e, attrs);
		for (var i = 2; i < arguments.length; i++)
			add(e, arguments[i]);
		return e;
	}

	function sv(tag, attrs) {
		var e = document.createElementNS(SVG, tag);
		setAttrs(e, attrs);
		for (var i = 2; i < arguments.length; i++)
			add(e, arguments[i]);
		return e;
	}

	function setAttrs(e, attrs) {
		if (!attrs)
			return;
		Object.keys(attrs).forEach(function (k) {
			var v = attrs[k];
			if (v === null || v === undefined || v === false)
				return;
			if (k === 'text')
				e.textContent = String(v);
			else if (k.slice(0, 2) === 'on')
				e.addEventListener(k.slice(2), v);
			else
				e.setAttribute(k, String(v));
		});
	}

	function add(parent, child) {
		if (child === null || child === undefined || child === false)
			return;
		if (Array.isArray(child))
			child.forEach(function (c) { add(parent, c); });
		else if (typeof child === 'string' || typeof child === 'number')
			parent.appendChild(document.createTextNode(String(child)));
		else
			parent.appendChild(child);
	}

	function clear(e) {
		while (e.firstChild)
			e.removeChild(e.firstChild);
	}

	function fmtCount(n) {
		return Number(n).toLocaleString('en-US');
	}

	function fmtBytes(n) {
		n = Number(n);
		var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
		var u = 0;
		while (Math.abs(n) >= 1024 && u < units.length - 1) {
			n /= 1024;
			u++;
		}
		if (u === 0)
			return n + ' B';
		return (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)) + ' ' + units[u];
	}

	function fmtSeconds(s) {
		s = Number(s);
		if (s === 0)
			return '0 s';
		if (s < 0.001)
			return (s * 1e6).toFixed(0) + ' µs';
		if (s < 1)
			return (s * 1000).toFixed(s < 0.01 ? 2 : s < 0.1 ? 1 : 0) + ' ms';
		if (s < 120)
			return s.toFixed(s < 10 ? 2 : 1) + ' s';
		var m = Math.floor(s / 60);
		return m + ' min ' + (s - m * 60).toFixed(0) + ' s';
	}

	function pct(part, whole) {
		if (!whole)
			return '0%';
		var p = 100 * part / whole;
		return (p >= 10 || p === 0 ? p.toFixed(0) : p < 0.1 ? '<0.1' : p.toFixed(1)) + '%';
	}

	function baseName(path) {
		if (!path)
			return '';
		var i = path.lastIndexOf('/');
		return i >= 0 ? path.slice(i + 1) : path;
	}

	function hashString(s) {
		var h = 2166136261;
		for (var i = 0; i < s.length; i++) {
			h ^= s.charCodeAt(i);
			h = Math.imul(h, 16777619);
		}
		return h >>> 0;
	}

	/* Round tick values for an axis up to max. */
	function ticks(max, count, bytes) {
		if (!(max > 0))
			return [0];
		var raw = max / count, step;
		if (bytes) {
			step = 1;
			while (step * 2 <= raw)
				step *= 2;
			if (step < raw)
				step *= 2;
		} else {
			var p = Math.pow(10, Math.floor(Math.log10(raw)));
			step = [1, 2, 2.5, 5, 10].map(function (m) { return m * p; })
				.filter(function (v) { return v >= raw; })[0];
		}
		var out = [0];
		while (out[out.length - 1] < max * 0.9999)
			out.push(out[out.length - 1] + step);
		return out;
	}

	/* ---- data ------------------------------------------------------- */

	var D = JSON.parse(document.getElementById('mp-data').textContent);
	var STR = D.strings;
	var FR = D.frames;

	function str(i) { return i >= 0 ? STR[i] : null; }

	/* A frame of the table: {fn, file, line, module, addr, alloc, inlined}. */
	function frame(i) {
		var f = FR[i];
		return { fn: str(f[0]), file: str(f[1]), line: f[2], module: str(f[3]), addr: f[4],
			alloc: f[5] === 1, inlined: f[6] === 1 };
	}

	function frameName(f) {
		return f.fn || ('0x' + f.addr.slice(2) + ' in ' + (baseName(f.module) || '?'));
	}

	function frameLoc(f) {
		if (f.file)
			return baseName(f.file) + (f.line ? ':' + f.line : '');
		return baseName(f.module) || '';
	}

	/* Where a stack allocates: its innermost frame that is not malloc &
	 * co., preferring one with a name (then one with a file). */
	function allocFrame(stack) {
		var first = null;
		for (var i = 0; i < stack.length; i++) {
			var f = frame(stack[i]);
			if (f.alloc)
				continue;
			if (!first)
				first = f;
			if (f.fn)
				return f;
		}
		return first || (stack.length ? frame(stack[0]) : null);
	}

	function stackList(stack) {
		if (!stack.length)
			return el('p', { class: 'mp-note', text: 'No stack was recorded.' });
		return el('ol', { class: 'mp-stack' }, stack.map(function (i, n) {
			var f = frame(i);
			return el('li', { class: f.alloc ? 'alloc' : null },
				el('span', { class: 'at', text: (n === 0 ? 'at ' : 'by ') }),
				frameName(f) + (f.inlined ? ' (inlined)' : ''),
				f.file ? [' ', el('span', { class: 'loc', text: f.file + (f.line ? ':' + f.line : '') })]
					: el('span', { class: 'at', text: ' in ' + (f.module || '?') }));
		}));
	}

	function snippet(index) {
		if (!(index >= 0))
			return null;
		var sn = D.snippets[index];
		var pre = el('pre', { class: 'mp-src' });
		var width = String(sn.first + sn.lines.length).length;
		sn.lines.forEach(function (text, k) {
			var no = sn.first + k;
			var num = String(no);
			while (num.length < width)
				num = ' ' + num;
			pre.appendChild(el('span', { class: no === sn.line ? 'ln hl' : 'ln' },
				el('span', { class: 'no', text: num }), text));
		});
		return el('div', null, el('div', { class: 'mp-srcname', text: str(sn.file) + ':' + sn.line }), pre);
	}

	var KINDS = ['definite', 'indirect', 'possible', 'reachable', 'suppressed'];
	var KIND_NAMES = { definite: 'definitely lost', indirect: 'indirectly lost', possible: 'possibly lost',
		reachable: 'still reachable', suppressed: 'suppressed' };

	/* ---- page frame --------------------------------------------------- */

	var app = document.getElementById('mp-app');
	var argv = D.program.argv.length ? D.program.argv : [D.program.exe || '?'];
	document.title = 'memprof: ' + argv.join(' ');

	var sections = [];

	function section(id, title, sub) {
		var s = el('section', { class: 'mp-card', id: id }, el('h2', { text: title }));
		if (sub)
			s.appendChild(el('p', { class: 'mp-sub', text: sub }));
		sections.push({ id: id, title: title, node: s });
		return s;
	}

	function header() {
		var p = D.program;
		var meta = [];
		if (p.pid !== null)
			meta.push('pid ' + p.pid);
		if (p.signal)
			meta.push('killed by signal ' + p.signal);
		else if (p.exit_status !== null)
			meta.push('exit status ' + p.exit_status);
		else if (p.exec)
			meta.push('replaced itself by exec');
		meta.push('ran ' + fmtSeconds(p.duration_s));
		if (p.start_realtime_s)
			meta.push(new Date(p.start_realtime_s * 1000).toLocaleString());
		if (p.forked_child)
			meta.push('a forked child');
		return el('header', { class: 'mp-top' },
			el('div', { class: 'mp-brand', text: 'memprof report' }),
			el('h1', null, baseName(argv[0]),
				argv.length > 1 ? el('span', { class: 'args', text: ' ' + argv.slice(1).join(' ') }) : null),
			el('div', { class: 'mp-meta', style: null }, meta.map(function (m) { return el('span', { text: m }); })),
			el('div', { style: null, class: 'mp-meta' }, el('span', { text: p.exe || '' })));
	}

	function banners() {
		var out = [];
		var c = D.capture;
		errorBanner = el('div', { class: 'mp-banner error', hidden: '' }, 'This page hit an error while drawing:');
		out.push(errorBanner);
		if (c.truncated)
			out.push(el('div', { class: 'mp-banner warning', text:
				'The capture is cut short (the program was killed while it was written): the numbers stop there.' }));
		else if (c.incomplete)
			out.push(el('div', { class: 'mp-banner warning', text:
				'The capture has no end record: the program did not end normally, so leaks were not scanned.' }));
		if (c.lost_events)
			out.push(el('div', { class: 'mp-banner warning', text:
				fmtCount(c.lost_events) + ' events could not be recorded: the counts are lower bounds.' }));
		if (c.scan_partial)
			out.push(el('div', { class: 'mp-banner warning', text:
				'The leak scan could not stop every thread: some leak kinds may be wrong.' }));
		if (!c.events_known)
			out.push(el('div', { class: 'mp-banner', text:
				'The allocation events were not available to this report: no curve of live bytes, no temporary allocations, no size histogram.' }));
		D.notes.forEach(function (n) {
			out.push(el('div', { class: 'mp-banner ' + n.level }, el('b', { text: n.level + ': ' }), n.text));
		});
		return out;
	}

	/* ---- summary ------------------------------------------------------- */

	function tile(k, v, d) {
		return el('div', { class: 'mp-tile' }, el('div', { class: 'k', text: k }),
			el('div', { class: 'v', text: v }), d ? el('div', { class: 'd', text: d }) : null);
	}

	function summary() {
		var t = D.totals;
		var s = section('summary', 'Summary');
		var leakedBytes = D.leaks.definite.bytes + D.leaks.indirect.bytes + D.leaks.possible.bytes;
		s.appendChild(el('div', { class: 'mp-tiles' },
			tile('Peak live memory', fmtBytes(t.peak_bytes), 'at ' + fmtSeconds(t.peak_time_s)),
			tile('Allocations', fmtCount(t.allocations), fmtBytes(t.bytes_allocated) + ' in all'),
			tile('Frees', fmtCount(t.frees), t.unmatched_frees ? fmtCount(t.unmatched_frees) + ' of unknown blocks' : null),
			tile('Live at exit', fmtBytes(t.live_bytes_at_exit), fmtCount(t.live_blocks_at_exit) + ' blocks'),
			tile('Lost', fmtBytes(leakedBytes), D.capture.scanned ? 'definitely, indirectly, possibly' : 'no leak scan'),
			tile('Temporary allocations', fmtCount(t.temporary), pct(t.temporary, t.allocations) + ' of all allocations'),
			tile('Duration', fmtSeconds(D.program.duration_s), null)));
		var total = 0;
		KINDS.forEach(function (k) { total += D.leaks[k].bytes; });
		var bar = el('div', { class: 'mp-leakbar', role: 'img', 'aria-label': 'live bytes at exit by leak kind' });
		KINDS.forEach(function (k) {
			if (D.leaks[k].bytes > 0) {
				var seg = el('div', { class: 'k-' + k, title: KIND_NAMES[k] });
				seg.style.width = (100 * D.leaks[k].bytes / total) + '%';
				bar.appendChild(seg);
			}
		});
		s.appendChild(el('h3', { class: 'mp-sub', style: null, text: 'Blocks live at exit, by leak kind' }));
		s.appendChild(bar);
		s.appendChild(el('div', { class: 'mp-legend' }, KINDS.map(function (k) {
			var l = D.leaks[k];
			return el('span', null, el('span', { class: 'sw k-' + k }), KIND_NAMES[k] + ': ',
				el('b', { text: fmtBytes(l.bytes) }), ' in ' + fmtCount(l.blocks) + ' blocks');
		})));
		return s;
	}

	/* ---- tooltip ------------------------------------------------------------ */

	var tip = el('div', { class: 'mp-tip', hidden: '' });

	function showTip(ev, lines) {
		clear(tip);
		lines.forEach(function (l, i) {
			if (i)
				tip.appendChild(el('br'));
			add(tip, l);
		});
		tip.hidden = false;
		var x = ev.clientX + 14, y = ev.clientY + 14;
		var w = tip.offsetWidth, hgt = tip.offsetHeight;
		if (x + w > window.innerWidth - 8)
			x = Math.max(8, ev.clientX - w - 14);
		if (y + hgt > window.innerHeight - 8)
			y = Math.max(8, ev.clientY - hgt - 14);
		tip.style.left = x + 'px';
		tip.style.top = y + 'px';
	}

	function hideTip() { tip.hidden = true; }

	/* ---- sites ---------------------------------------------------------------- */

	var SITES = D.sites.rows;

	function siteWhere(row) {
		var f = allocFrame(row.s);
		return f ? { name: frameName(f), loc: frameLoc(f), file: f.file } : { name: '(no stack)', loc: '', file: null };
	}

	function whereCell(row) {
		var w = siteWhere(row);
		return el('td', { class: 'loc' }, el('div', { class: 'fn', text: w.name }),
			w.loc ? el('div', { class: 'file', text: w.loc }) : null);
	}

	/* ---- memory over time ------------------------------------------------------- */

	function timeline() {
		var s = section('timeline', 'Memory over time',
			'Live bytes (the largest value between two points) and the resident set size of the process. ' +
			'Click the chart to see what was live then, by allocation site.');
		var tl = D.timeline;
		if (!tl.points.length) {
			s.appendChild(el('p', { class: 'mp-note', text: 'No allocation was recorded.' }));
			return s;
		}
		var chart = el('div', { class: 'mp-chart', id: 'mp-timeline-chart' });
		var legend = el('div', { class: 'mp-legend' },
			el('span', null, el('span', { class: 'sw', style: null }), 'live bytes'),
			tl.rss.length ? el('span', null, el('span', { class: 'sw' }), 'resident set size (RSS)') : null,
			el('span', null, el('span', { class: 'sw k-definite' }), 'peak'));
		legend.children[0].firstChild.style.background = 'var(--live)';
		if (tl.rss.length)
			legend.children[1].firstChild.style.background = 'var(--rss)';
		var detail = el('div', { id: 'mp-live-at' });
		s.appendChild(legend);
		s.appendChild(chart);
		s.appendChild(detail);

		var useTime = tl.points[tl.points.length - 1][0] > tl.points[0][0] || tl.points[0][0] > 0;
		function xOf(i) { return useTime ? tl.points[i][0] : i; }
		var selected = -1;
		tl.points.forEach(function (p, i) { if (p[4] === 1 && p[3] >= 0) selected = i; });
		if (selected < 0)
			selected = tl.points.length - 1;

		function draw() {
			clear(chart);
			var W = Math.max(320, chart.clientWidth || 900), H = 260;
			var L = 64, R = 14, T = 12, B = 28;
			var xmax = xOf(tl.points.length - 1);
			tl.rss.forEach(function (r) { if (useTime && r[0] > xmax) xmax = r[0]; });
			if (!(xmax > 0))
				xmax = 1;
			var ymax = 0;
			tl.points.forEach(function (p) { ymax = Math.max(ymax, p[2]); });
			tl.rss.forEach(function (r) { ymax = Math.max(ymax, r[1]); });
			var yt = ticks(ymax || 1, 4, true);
			ymax = yt[yt.length - 1] || 1;
			function X(v) { return L + (W - L - R) * v / xmax; }
			function Y(v) { return T + (H - T - B) * (1 - v / ymax); }
			var svg = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img',
				'aria-label': 'live bytes and RSS over time' });
			yt.forEach(function (v) {
				svg.appendChild(sv('line', { class: 'grid', x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
				svg.appendChild(sv('text', { x: L - 6, y: Y(v) + 4, 'text-anchor': 'end', text: fmtBytes(v) }));
			});
			ticks(xmax, Math.max(2, Math.floor(W / 110)), false).filter(function (v) {
				return v <= xmax * 1.0001;
			}).forEach(function (v) {
				svg.appendChild(sv('text', { x: X(v), y: H - 8, 'text-anchor': 'middle',
					text: useTime ? fmtSeconds(v) : '#' + v }));
			});
			var pts = [[X(0), Y(0)]];
			tl.points.forEach(function (p, i) { pts.push([X(xOf(i)), Y(p[2])]); });
			var line = pts.map(function (q) { return q[0].toFixed(1) + ',' + q[1].toFixed(1); }).join(' ');
			svg.appendChild(sv('polygon', { class: 'live-area', points: line + ' ' + X(xOf(tl.points.length - 1)).toFixed(1) + ',' + Y(0) }));
			svg.appendChild(sv('polyline', { class: 'live', points: line }));
			if (useTime && tl.rss.length) {
				var rl = tl.rss.map(function (r) { return X(r[0]).toFixed(1) + ',' + Y(r[1]).toFixed(1); }).join(' ');
				svg.appendChild(sv('polyline', { class: 'rss', points: rl }));
			}
			var peakX = null;
			tl.points.forEach(function (p, i) {
				if (p[4] === 1) {
					peakX = X(xOf(i));
					svg.appendChild(sv('line', { class: 'peak-line', x1: peakX, x2: peakX, y1: T, y2: H - B }));
					svg.appendChild(sv('circle', { class: 'peak', cx: peakX, cy: Y(p[1]), r: 4.5 },
						sv('title', { text: 'peak: ' + fmtBytes(D.totals.peak_bytes) })));
					var right = peakX > W * 0.7;
					svg.appendChild(sv('text', { x: peakX + (right ? -8 : 8), y: Math.max(T + 10, Y(p[1]) - 6),
						'text-anchor': right ? 'end' : 'start', class: 'peak-label',
						text: 'peak ' + fmtBytes(D.totals.peak_bytes) + ' at ' + fmtSeconds(D.totals.peak_time_s) }));
				}
			});
			var sel = tl.points[selected];
			var selX = X(xOf(selected));
			svg.appendChild(sv('line', { class: 'cursor', x1: selX, x2: selX, y1: T, y2: H - B }));
			svg.appendChild(sv('circle', { class: 'sel', cx: selX, cy: Y(sel[1]), r: 3.5 }));
			var hover = sv('line', { class: 'cursor', x1: -10, x2: -10, y1: T, y2: H - B });
			svg.appendChild(hover);
			function nearest(evt, withBreakdown) {
				var rect = svg.getBoundingClientRect();
				var px = (evt.clientX - rect.left) * W / rect.width;
				var best = -1, dist = Infinity;
				tl.points.forEach(function (p, i) {
					if (withBreakdown && p[3] < 0)
						return;
					var d = Math.abs(X(xOf(i)) - px);
					if (d < dist) {
						dist = d;
						best = i;
					}
				});
				return best;
			}
			var hit = sv('rect', { class: 'hit', x: L, y: T, width: W - L - R, height: H - T - B,
				onmousemove: function (evt) {
					var i = nearest(evt, false);
					if (i < 0)
						return;
					var x = X(xOf(i));
					hover.setAttribute('x1', x);
					hover.setAttribute('x2', x);
					var p = tl.points[i];
					showTip(evt, [el('b', { text: useTime ? fmtSeconds(p[0]) : 'point ' + i }),
						'live: ' + fmtBytes(p[1]) + (p[2] > p[1] ? ' (up to ' + fmtBytes(p[2]) + ' just before)' : ''),
						p[4] === 1 ? 'the peak' : null,
						el('span', { class: 'm', text: 'click to see what was live' })].filter(Boolean));
				},
				onmouseleave: function () {
					hover.setAttribute('x1', -10);
					hover.setAttribute('x2', -10);
					hideTip();
				},
				onclick: function (evt) {
					var i = nearest(evt, true);
					if (i >= 0) {
						selected = i;
						draw();
						showBreakdown();
					}
				} });
			svg.appendChild(hit);
			chart.appendChild(svg);
		}

		function showBreakdown() {
			clear(detail);
			var p = tl.points[selected];
			var bd = tl.breakdowns[p[3]];
			if (!bd)
				return;
			detail.appendChild(el('h3', { class: 'mp-sub' },
				el('b', { text: 'Live ' + (useTime ? 'at ' + fmtSeconds(p[0]) : 'at point ' + selected) +
					(p[4] === 1 ? ' (the peak)' : '') + ': ' }),
				fmtBytes(p[1]) + ' in ' + fmtCount(bd.blocks) + ' blocks'));
			var table = el('table', { class: 'mp-table' },
				el('thead', null, el('tr', null, el('th', { text: 'Allocation site' }),
					el('th', { class: 'num', text: 'Live bytes' }), el('th', { class: 'num', text: 'Blocks' }),
					el('th', { class: 'num hide-narrow', text: 'Share' }))));
			var body = el('tbody');
			bd.rows.forEach(function (r) {
				var share = el('span', { class: 'mp-share' });
				share.style.width = Math.max(1, Math.round(80 * r[1] / (p[1] || 1))) + 'px';
				body.appendChild(el('tr', null, whereCell(SITES[r[0]]),
					el('td', { class: 'num', text: fmtBytes(r[1]) }), el('td', { class: 'num', text: fmtCount(r[2]) }),
					el('td', { class: 'num hide-narrow' }, pct(r[1], p[1]), share)));
			});
			if (bd.other[2] > 0)
				body.appendChild(el('tr', null, el('td', { class: 'loc', text: fmtCount(bd.other[2]) + ' other sites' }),
					el('td', { class: 'num', text: fmtBytes(bd.other[0]) }), el('td', { class: 'num', text: fmtCount(bd.other[1]) }),
					el('td', { class: 'num hide-narrow', text: pct(bd.other[0], p[1]) })));
			if (!bd.rows.length)
				body.appendChild(el('tr', null, el('td', { colspan: 4, class: 'mp-note', text: 'Nothing was live.' })));
			table.appendChild(body);
			detail.appendChild(el('div', { class: 'mp-tablewrap' }, table));
		}
		s.mpDraw = function () { draw(); showBreakdown(); };
		return s;
	}

	/* ---- flamegraph ------------------------------------------------------------------ */

	var COSTS = [
		{ key: 'peak', label: 'Peak memory', col: 6, bytes: true, what: 'bytes live at the peak' },
		{ key: 'leaked', label: 'Leaked', col: 7, bytes: true, what: 'bytes live at exit' },
		{ key: 'count', label: 'Allocations', col: 8, bytes: false, what: 'allocations' },
		{ key: 'temporary', label: 'Temporary', col: 9, bytes: false, what: 'temporary allocations' },
	];

	function flamegraph() {
		var s = section('flamegraph', 'Flamegraph',
			'Who allocated, from the outermost frame (top) to the allocating call. Width is the chosen cost; ' +
			'click a frame to zoom in, hover for details.');
		var fl = D.flame;
		if (!fl || fl.nodes.length <= 1) {
			s.appendChild(el('p', { class: 'mp-note', text: 'No allocation was recorded.' }));
			return s;
		}
		var N = fl.nodes.map(function (n, i) {
			var fn = str(n[1]), file = str(n[2]), module = str(n[4]);
			var name = i === 0 ? 'all allocations' :
				n[10] > 0 ? '(' + fmtCount(n[10]) + ' smaller frames)' :
				fn || (module ? baseName(module) + '+' + n[5] : n[5]);
			return { i: i, parent: n[0], name: name, fn: fn, file: file, line: n[3], module: module,
				v: [n[6], n[7], n[8], n[9]], merged: n[10], children: [], depth: 0 };
		});
		N.forEach(function (n) {
			if (n.parent >= 0) {
				N[n.parent].children.push(n);
				n.depth = N[n.parent].depth + 1;
			}
		});
		var cost = D.totals.peak_bytes > 0 ? 0 : 2;
		var zoom = N[0];
		var query = '';

		var buttons = COSTS.map(function (c, k) {
			return el('button', { type: 'button', 'aria-pressed': String(k === cost), text: c.label,
				onclick: function () {
					cost = k;
					buttons.forEach(function (b, j) { b.setAttribute('aria-pressed', String(j === k)); });
					zoom = N[0];
					draw();
				} });
		});
		var search = el('input', { type: 'search', placeholder: 'Search functions and files', 'aria-label': 'search frames',
			oninput: function () { query = search.value.trim().toLowerCase(); draw(); } });
		var reset = el('button', { type: 'button', class: 'mp-btn', text: 'Reset zoom',
			onclick: function () { zoom = N[0]; draw(); } });
		var info = el('span', { class: 'mp-note', id: 'mp-flame-info' });
		s.appendChild(el('div', { class: 'mp-controls' }, el('div', { class: 'mp-seg', role: 'group', 'aria-label': 'cost' }, buttons),
			search, reset, info));
		var box = el('div', { class: 'mp-flame', id: 'mp-flame' });
		s.appendChild(box);
		if (fl.total_nodes > fl.nodes.length)
			s.appendChild(el('p', { class: 'mp-note', text: 'The tree has ' + fmtCount(fl.total_nodes) +
				' frames; the ' + fmtCount(fl.max_nodes) + ' largest are drawn and the others are gathered into "(N smaller frames)".' }));

		function matches(n) {
			if (!query || n.i === 0 || n.merged)
				return false;
			return (n.fn && n.fn.toLowerCase().indexOf(query) >= 0) ||
				(n.file && n.file.toLowerCase().indexOf(query) >= 0);
		}

		function color(n) {
			if (n.i === 0)
				return '#9fb3c8';
			if (n.merged)
				return '#c8c8c8';
			var h = hashString(n.fn || n.module || '');
			if (cost === 1)
				return 'hsl(' + (h % 25) + ',' + (60 + (h >> 8) % 25) + '%,' + (62 + (h >> 16) % 12) + '%)';
			if (cost === 3)
				return 'hsl(' + (170 + h % 40) + ',' + (45 + (h >> 8) % 25) + '%,' + (60 + (h >> 16) % 14) + '%)';
			return 'hsl(' + (12 + h % 38) + ',' + (75 + (h >> 8) % 20) + '%,' + (58 + (h >> 16) % 14) + '%)';
		}

		function draw() {
			clear(box);
			var c = COSTS[cost];
			var total = N[0].v[cost];
			var W = Math.max(320, box.clientWidth || 1000), RH = 19;
			var rects = [];
			var ancestors = [];
			for (var a = zoom; a.parent >= 0; a = N[a.parent])
				ancestors.unshift(N[a.parent]);
			ancestors.forEach(function (n) { rects.push({ n: n, x: 0, w: W, anc: true }); });
			var zv = zoom.v[cost];
			var maxDepth = zoom.depth;
			function lay(n, x, w) {
				rects.push({ n: n, x: x, w: w, anc: false });
				if (n.depth > maxDepth)
					maxDepth = n.depth;
				var kids = n.children.filter(function (k) { return k.v[cost] > 0; })
					.sort(function (p, q) { return q.v[cost] - p.v[cost] || (p.name < q.name ? -1 : 1); });
				var cx = x;
				kids.forEach(function (k) {
					var kw = w * k.v[cost] / n.v[cost];
					if (kw >= 0.4)
						lay(k, cx, kw);
					cx += kw;
				});
			}
			if (zv > 0)
				lay(zoom, 0, W);
			var matched = 0;
			function matchedShare(n, under) {
				var m = matches(n);
				if (m && !under)
					matched += n.v[cost];
				n.children.forEach(function (k) { matchedShare(k, under || m); });
			}
			if (query)
				matchedShare(N[0], false);
			var H = (maxDepth + 1) * RH + 2;
			var svg = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, height: H, role: 'img', 'aria-label': 'flamegraph' });
			rects.forEach(function (r) {
				var n = r.n;
				var m = matches(n);
				var cls = r.anc ? 'ancestor' : query ? (m ? 'match' : 'dim') : null;
				var g = sv('g', { class: cls, transform: 'translate(' + r.x.toFixed(2) + ',' + (n.depth * RH) + ')' });
				var rect = sv('rect', { width: Math.max(0.5, r.w - 0.5).toFixed(2), height: RH - 1, rx: 2 });
				rect.style.fill = color(n);
				g.appendChild(rect);
				var chars = Math.floor((r.w - 8) / 7);
				if (chars >= 3) {
					var label = n.name.length > chars ? n.name.slice(0, chars - 1) + '…' : n.name;
					g.appendChild(sv('text', { x: 4, y: RH - 6, text: label }));
				}
				g.addEventListener('mousemove', function (evt) {
					var lines = [el('b', { text: n.name })];
					if (n.file)
						lines.push(n.file + (n.line ? ':' + n.line : ''));
					if (n.module && n.i !== 0 && !n.merged)
						lines.push(el('span', { class: 'm', text: n.module }));
					lines.push(c.label + ': ' + (c.bytes ? fmtBytes(n.v[cost]) : fmtCount(n.v[cost])) +
						' (' + pct(n.v[cost], total) + ' of ' + c.what + ')');
					COSTS.forEach(function (o, k) {
						if (k !== cost)
							lines.push(el('span', { class: 'm', text: o.label + ': ' +
								(o.bytes ? fmtBytes(n.v[k]) : fmtCount(n.v[k])) }));
					});
					showTip(evt, lines);
				});
				g.addEventListener('mouseleave', hideTip);
				g.addEventListener('click', function () {
					zoom = n.merged ? N[n.parent] : n;
					draw();
				});
				svg.appendChild(g);
			});
			box.appendChild(svg);
			clear(info);
			if (query)
				add(info, 'Matched: ' + pct(matched, total) + ' of ' + c.what + ' (' +
					(c.bytes ? fmtBytes(matched) : fmtCount(matched)) + ')');
			else if (zoom !== N[0])
				add(info, 'Zoomed on ' + zoom.name + ': ' + pct(zv, total) + ' of ' + c.what);
			else
				add(info, 'Total: ' + (c.bytes ? fmtBytes(total) : fmtCount(total)) + ' ' + c.what);
			if (total === 0 && !query)
				box.appendChild(el('p', { class: 'mp-note', text: 'Nothing to show for this cost.' }));
		}
		s.mpDraw = draw;
		return s;
	}

	/* ---- sites table ---------------------------------------------------------------------- */

	function sitesTable() {
		var s = section('sites', 'Allocation sites',
			'One row per distinct stack. Click a column to sort, a row to see its stack and source.');
		var cols = [
			{ label: 'Peak', get: function (r) { return r.p; }, fmt: fmtBytes, title: 'bytes live at the peak' },
			{ label: 'Leaked', get: function (r) { return r.l; }, fmt: fmtBytes, title: 'bytes live at exit' },
			{ label: 'Allocations', get: function (r) { return r.a; }, fmt: fmtCount },
			{ label: 'Bytes allocated', get: function (r) { return r.b; }, fmt: fmtBytes, narrow: true },
			{ label: 'Temporary', get: function (r) { return r.t; }, fmt: fmtCount, narrow: true,
				title: 'allocations freed before their thread allocated again' },
		];
		var sortCol = 0, desc = true, filter = '';
		var input = el('input', { type: 'search', placeholder: 'Filter by function or file', 'aria-label': 'filter sites',
			oninput: function () { filter = input.value.trim().toLowerCase(); fill(); } });
		var count = el('span', { class: 'mp-note' });
		s.appendChild(el('div', { class: 'mp-controls' }, input, count));
		var heads = [el('th', { text: 'Where', class: 'sortable', onclick: function () { sortBy(-1); } })].concat(cols.map(function (c, k) {
			return el('th', { class: 'num sortable' + (c.narrow ? ' hide-narrow' : ''), title: c.title || null,
				text: c.label, onclick: function () { sortBy(k); } });
		}));
		var tbody = el('tbody');
		var table = el('table', { class: 'mp-table', id: 'mp-sites-table' }, el('thead', null, el('tr', null, heads)), tbody);
		s.appendChild(el('div', { class: 'mp-tablewrap' }, table));
		var where = SITES.map(function (r) {
			var w = siteWhere(r);
			var text = r.s.map(function (i) { var f = frame(i); return (f.fn || '') + ' ' + (f.file || ''); }).join(' ');
			return { w: w, search: text.toLowerCase() };
		});

		function sortBy(k) {
			if (k === sortCol)
				desc = !desc;
			else {
				sortCol = k;
				desc = k >= 0;
			}
			fill();
		}

		function fill() {
			heads.forEach(function (h, k) {
				if (k - 1 === sortCol)
					h.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
				else
					h.removeAttribute('aria-sort');
			});
			var idx = [];
			for (var i = 0; i < SITES.length; i++)
				if (!filter || where[i].search.indexOf(filter) >= 0)
					idx.push(i);
			idx.sort(function (a, b) {
				var d;
				if (sortCol < 0)
					d = where[a].w.name < where[b].w.name ? -1 : where[a].w.name > where[b].w.name ? 1 : 0;
				else
					d = cols[sortCol].get(SITES[a]) - cols[sortCol].get(SITES[b]);
				return (desc ? -d : d) || a - b;
			});
			clear(tbody);
			idx.forEach(function (i) {
				var r = SITES[i];
				var row = el('tr', { class: 'site-row', tabindex: 0 }, whereCell(r), cols.map(function (c) {
					return el('td', { class: 'num' + (c.narrow ? ' hide-narrow' : ''), text: c.fmt(c.get(r)) });
				}));
				var open = null;
				function toggle() {
					if (open) {
						tbody.removeChild(open);
						open = null;
						return;
					}
					open = el('tr', { class: 'detail' }, el('td', { colspan: cols.length + 1 },
						stackList(r.s), snippet(r.src)));
					row.parentNode.insertBefore(open, row.nextSibling);
				}
				row.addEventListener('click', toggle);
				row.addEventListener('keydown', function (e) { if (e.key === 'Enter') toggle(); });
				tbody.appendChild(row);
			});
			clear(count);
			add(count, fmtCount(idx.length) + ' of ' + fmtCount(D.sites.total) + ' sites' +
				(D.sites.shown < D.sites.total ? ' (the page keeps the ' + fmtCount(D.limits.sites) +
					' largest by each column)' : ''));
		}
		fill();
		return s;
	}

	/* ---- leaks ------------------------------------------------------------------------------- */

	function leaks() {
		var lr = D.leak_records;
		var s = section('leaks', 'Leaks',
			D.capture.scanned ? 'Blocks live at exit, grouped by kind and stack, largest first.'
				: 'Blocks live at exit, largest first. The program was not scanned at exit, so every block counts as reachable.');
		if (!lr.rows.length) {
			s.appendChild(el('p', { class: 'mp-note', text: 'Every block was freed.' }));
			return s;
		}
		var list = el('div');
		var shown = 0;
		function more() {
			var upto = Math.min(lr.rows.length, shown + 100);
			for (; shown < upto; shown++) {
				var r = lr.rows[shown];
				var f = allocFrame(r.s);
				var badge = el('span', { class: 'mp-kind k-' + r.k, text: KIND_NAMES[r.k] || r.k });
				var sum = el('summary', null, badge,
					el('b', { text: fmtBytes(r.b) }), ' in ' + fmtCount(r.n) + (r.n === 1 ? ' block' : ' blocks') +
					(r.ib ? ' (+' + fmtBytes(r.ib) + ' indirectly in ' + fmtCount(r.in) + ')' : ''),
					f ? el('span', { class: 'mp-where', text: frameName(f) + (frameLoc(f) ? ' · ' + frameLoc(f) : '') }) : null);
				var d = el('details', { class: 'mp-leak' }, sum, stackList(r.s), snippet(r.src));
				if (shown < 3 && r.k !== 'reachable')
					d.open = true;
				list.appendChild(d);
			}
			button.hidden = shown >= lr.rows.length;
		}
		var button = el('button', { type: 'button', class: 'mp-btn', text: 'Show more', onclick: more });
		s.appendChild(list);
		s.appendChild(button);
		more();
		if (lr.total > lr.shown)
			s.appendChild(el('p', { class: 'mp-note', text: 'The ' + fmtCount(lr.shown) + ' largest of ' +
				fmtCount(lr.total) + ' records are in this page.' }));
		return s;
	}

	/* ---- cycles ---------------------------------------------------------------------------------- */

	var markerId = 0;

	/* A cycle drawn as a graph: its blocks on a circle, pointers as arrows. */
	function cycleGraph(c) {
		var n = c.members.length;
		var W = 420, H = n > 12 ? 420 : 300;
		var cx = W / 2, cy = H / 2, R = Math.min(W, H) / 2 - 60;
		if (n === 1)
			R = 0;
		var pos = c.members.map(function (m, i) {
			var a = -Math.PI / 2 + 2 * Math.PI * i / n;
			return [cx + R * Math.cos(a), cy + R * Math.sin(a)];
		});
		var id = 'mp-arrow-' + (markerId++);
		var svg = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'cycle of ' + n + ' blocks' },
			sv('defs', null, sv('marker', { id: id, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
				sv('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' }))));
		var r = 9;
		c.edges.forEach(function (e) {
			var a = pos[e[0]], b = pos[e[1]];
			if (e[0] === e[1]) {
				svg.appendChild(sv('path', { d: 'M' + (a[0] + r) + ',' + a[1] + ' c 28,-30 28,30 ' + (-r / 2) + ',' + (r - 1),
					fill: 'none', class: 'edge', 'marker-end': 'url(#' + id + ')' },
					sv('title', { text: 'points to itself at offset ' + e[2] })));
				return;
			}
			var dx = b[0] - a[0], dy = b[1] - a[1], len = Math.sqrt(dx * dx + dy * dy) || 1;
			svg.appendChild(sv('line', { x1: a[0] + dx / len * r, y1: a[1] + dy / len * r,
				x2: b[0] - dx / len * (r + 2), y2: b[1] - dy / len * (r + 2), class: 'edge', 'marker-end': 'url(#' + id + ')' },
				sv('title', { text: c.members[e[0]][0] + ' + ' + e[2] + ' points to ' + c.members[e[1]][0] })));
		});
		c.members.forEach(function (m, i) {
			var f = allocFrame(m[2]);
			var name = f ? frameName(f) : m[0];
			var label = name.length > 22 ? name.slice(0, 21) + '…' : name;
			var loc = f ? frameLoc(f) : '';
			var right = pos[i][0] >= cx;
			var tx = pos[i][0] + (n === 1 ? 0 : right ? r + 4 : -r - 4);
			var ty = pos[i][1] + (n === 1 ? r + 14 : 0);
			var anchor = n === 1 ? 'middle' : right ? 'start' : 'end';
			svg.appendChild(sv('g', null,
				sv('circle', { cx: pos[i][0], cy: pos[i][1], r: r },
					sv('title', { text: m[0] + ', ' + fmtBytes(m[1]) + (f ? ', allocated in ' + frameName(f) + ' ' + loc : '') })),
				sv('text', { x: tx, y: ty, 'text-anchor': anchor, text: label }),
				loc ? sv('text', { x: tx, y: ty + 13, 'text-anchor': anchor, class: 'loc', text: loc.length > 28 ? '…' + loc.slice(-27) : loc }) : null));
		});
		return el('div', { class: 'mp-graph' }, svg);
	}

	function cycles() {
		var cy = D.cycles;
		if (!cy.total)
			return null;
		var s = section('cycles', 'Unreachable cycles',
			'Lost blocks that point to each other, so that no block of the group can be freed first: ' +
			'often a missing break of a back reference.');
		cy.rows.forEach(function (c, k) {
			var members = el('table', { class: 'mp-table' },
				el('thead', null, el('tr', null, el('th', { text: 'Block' }), el('th', { class: 'num', text: 'Size' }),
					el('th', { text: 'Allocated in' }))),
				el('tbody', null, c.members.map(function (m) {
					var f = allocFrame(m[2]);
					return el('tr', null, el('td', { class: 'fn', text: m[0] }), el('td', { class: 'num', text: fmtBytes(m[1]) }),
						el('td', { class: 'loc' }, f ? [el('div', { class: 'fn', text: frameName(f) }),
							el('div', { class: 'file', text: frameLoc(f) })] : '(no stack)'));
				})));
			var d = el('details', { class: 'mp-leak' },
				el('summary', null, el('span', { class: 'mp-kind k-definite', text: 'cycle' }),
					el('b', { text: fmtBytes(c.bytes) }), ' in ' + fmtCount(c.blocks) + ' blocks' +
					(c.n_members > c.members.length ? ' (the first ' + c.members.length + ' drawn)' : '')),
				el('div', { class: 'mp-grid2' }, cycleGraph(c), el('div', { class: 'mp-tablewrap' }, members)));
			if (k < 3)
				d.open = true;
			s.appendChild(d);
		});
		if (cy.total > cy.rows.length)
			s.appendChild(el('p', { class: 'mp-note', text: 'The ' + cy.rows.length + ' largest of ' + fmtCount(cy.total) + ' cycles are shown.' }));
		return s;
	}

	/* ---- bad frees, objects, sizes, allocator ----------------------------------------------- */

	function badFrees() {
		var bf = D.bad_frees;
		if (!bf.total)
			return null;
		var s = section('bad-frees', 'Bad frees', 'Frees of blocks that were already freed, or never allocated by malloc.');
		bf.rows.forEach(function (b) {
			s.appendChild(el('details', { class: 'mp-leak' },
				el('summary', null, el('span', { class: 'mp-kind k-definite', text: b.kind + ' free' }),
					el('span', { class: 'mp-where', text: b.address })),
				stackList(b.s), b.as.length ? [el('div', { class: 'mp-sub', text: 'The block was allocated:' }), stackList(b.as)] : null));
		});
		if (bf.total > bf.rows.length)
			s.appendChild(el('p', { class: 'mp-note', text: 'The first ' + bf.rows.length + ' of ' + fmtCount(bf.total) + ' are shown.' }));
		return s;
	}

	function simpleTable(head, rows, numeric) {
		return el('div', { class: 'mp-tablewrap' }, el('table', { class: 'mp-table' },
			el('thead', null, el('tr', null, head.map(function (h, k) {
				return el('th', { class: numeric[k] ? 'num' : null, text: h });
			}))),
			el('tbody', null, rows.map(function (r) {
				return el('tr', null, r.map(function (v, k) {
					return el('td', { class: numeric[k] ? 'num' : null, text: v });
				}));
			}))));
	}

	function objects() {
		var o = D.objects;
		if (!o.types.length)
			return null;
		var s = section('objects', 'Objects by type', 'libmemprof-heap objects alive at the last snapshot' +
			(o.snapshot ? ' ("' + o.snapshot + '")' : '') + '.');
		var types = o.types.slice().sort(function (a, b) { return b.bytes - a.bytes || b.count - a.count; });
		s.appendChild(simpleTable(['Type', 'Objects', 'Bytes'], types.map(function (t) {
			return [t.name, fmtCount(t.count), fmtBytes(t.bytes)];
		}), [false, true, true]));
		return s;
	}

	function sizeLabel(lo, hi) {
		if (hi === lo)
			return fmtBytes(lo);
		if (lo < 1024)
			return lo + '–' + hi + ' B';
		return fmtBytes(lo) + '–' + fmtBytes(hi + 1);
	}

	function sizes() {
		if (!D.sizes.length)
			return null;
		var s = section('sizes', 'Allocation sizes', 'How many allocations (or how many bytes) fell in each power-of-two range of sizes.');
		var byBytes = false;
		var seg = el('div', { class: 'mp-seg', role: 'group' });
		var b1 = el('button', { type: 'button', 'aria-pressed': 'true', text: 'Allocations',
			onclick: function () { byBytes = false; b1.setAttribute('aria-pressed', 'true'); b2.setAttribute('aria-pressed', 'false'); draw(); } });
		var b2 = el('button', { type: 'button', 'aria-pressed': 'false', text: 'Bytes',
			onclick: function () { byBytes = true; b2.setAttribute('aria-pressed', 'true'); b1.setAttribute('aria-pressed', 'false'); draw(); } });
		add(seg, [b1, b2]);
		s.appendChild(el('div', { class: 'mp-controls' }, seg));
		var chart = el('div', { class: 'mp-chart', id: 'mp-sizes-chart' });
		s.appendChild(chart);
		function draw() {
			clear(chart);
			var rows = D.sizes;
			var W = Math.max(320, chart.clientWidth || 900), H = 220, L = 64, R = 10, T = 10, B = 46;
			var vmax = 0;
			rows.forEach(function (r) { vmax = Math.max(vmax, byBytes ? r[3] : r[2]); });
			var yt = ticks(vmax || 1, 4, byBytes);
			vmax = yt[yt.length - 1] || 1;
			var svg = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'allocation size histogram' });
			function Y(v) { return T + (H - T - B) * (1 - v / vmax); }
			yt.forEach(function (v) {
				svg.appendChild(sv('line', { class: 'grid', x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
				svg.appendChild(sv('text', { x: L - 6, y: Y(v) + 4, 'text-anchor': 'end', text: byBytes ? fmtBytes(v) : fmtCount(v) }));
			});
			var bw = (W - L - R) / rows.length;
			rows.forEach(function (r, i) {
				var v = byBytes ? r[3] : r[2];
				var x = L + i * bw;
				svg.appendChild(sv('rect', { class: 'bar', x: x + bw * 0.12, y: Y(v), width: Math.max(1, bw * 0.76), height: Y(0) - Y(v) },
					sv('title', { text: sizeLabel(r[0], r[1]) + ': ' + fmtCount(r[2]) + ' allocations, ' + fmtBytes(r[3]) })));
				if (bw > 34 || i % Math.ceil(34 / bw) === 0)
					svg.appendChild(sv('text', { x: x + bw / 2, y: H - B + 14, 'text-anchor': 'middle', text: r[0] < 1024 ? String(r[0]) : fmtBytes(r[0]) }));
			});
			svg.appendChild(sv('text', { x: L + (W - L - R) / 2, y: H - 8, 'text-anchor': 'middle', text: 'size (bytes, from)' }));
			chart.appendChild(svg);
		}
		s.mpDraw = draw;
		return s;
	}

	function allocator() {
		var a = D.allocator;
		if (!a)
			return null;
		var s = section('allocator', 'Allocator', 'memprof\'s pool allocator at exit: arenas of 1 MiB, pools of 16 KiB, one size class per 16 bytes up to 512.');
		s.appendChild(el('div', { class: 'mp-tiles' },
			tile('Arenas', fmtCount(a.arenas_allocated), fmtCount(a.arenas_reclaimed) + ' reclaimed, at most ' + fmtCount(a.arenas_highwater) + ' at once'),
			tile('Large blocks', fmtCount(a.large_blocks), fmtBytes(a.large_bytes)),
			tile('Rounding waste', fmtBytes(a.bytes_quantization), 'bytes lost to size classes'),
			tile('Pool headers', fmtBytes(a.bytes_pool_headers), fmtBytes(a.bytes_empty_pools) + ' in empty pools')));
		var rows = a.classes.filter(function (c) { return c[1] > 0 || c[2] > 0; });
		if (rows.length) {
			s.appendChild(el('h3', { class: 'mp-sub', text: 'Size classes in use' }));
			s.appendChild(simpleTable(['Block size', 'Pools', 'Blocks in use', 'Blocks free', 'Use'], rows.map(function (c) {
				return [c[0] + ' B', fmtCount(c[1]), fmtCount(c[2]), fmtCount(c[3]), pct(c[2], c[2] + c[3])];
			}), [false, true, true, true, true]));
		}
		return s;
	}

	function footer() {
		return el('footer', { class: 'mp-foot' }, el('dl', null,
			el('dt', { text: 'Peak memory' }), el('dd', { text: 'The most bytes live at once (requested sizes), and what each site had live at that moment.' }),
			el('dt', { text: 'Leak kinds' }), el('dd', { text: 'As valgrind\'s memcheck: definitely lost (no pointer to the block left), indirectly lost (reachable only from lost blocks), possibly lost (only interior pointers), still reachable; suppressed by a suppression file.' }),
			el('dt', { text: 'Temporary allocations' }), el('dd', { text: 'Allocations freed before the thread that made them allocated anything else (whichever thread frees them), as memray counts them. Many of them often mean a buffer that could live on the stack or be reused.' }),
			el('dt', { text: 'Limits' }), el('dd', { text: 'To open quickly, the page keeps at most ' + fmtCount(D.limits.flame_nodes) + ' flamegraph frames, the ' +
				fmtCount(D.limits.sites) + ' largest sites by each column, the ' + fmtCount(D.limits.leak_records) + ' largest leak records and ' +
				fmtCount(D.limits.breakdown_top) + ' sites per point of the memory chart.' })),
			el('p', { text: 'Generated by memprof ' + D.memprof + '. This page loads nothing from the network.' }));
	}

	/* ---- assemble ------------------------------------------------------------------------------ */

	var main = el('main');
	add(main, banners());
	[summary(), timeline(), flamegraph(), sitesTable(), leaks(), cycles(), badFrees(), objects(), sizes(), allocator()]
		.forEach(function (sec) { add(main, sec); });
	var nav = el('nav', { class: 'mp-nav', 'aria-label': 'sections' }, sections.map(function (sec) {
		return el('a', { href: '#' + sec.id, text: sec.title });
	}));
	add(app, [header(), nav, main, footer(), tip]);

	function drawAll() {
		sections.forEach(function (sec) {
			if (sec.node.mpDraw)
				sec.node.mpDraw();
		});
	}
	drawAll();
	var lastWidth = window.innerWidth, pending = null;
	window.addEventListener('resize', function () {
		if (window.innerWidth === lastWidth)
			return;
		lastWidth = window.innerWidth;
		clearTimeout(pending);
		pending = setTimeout(drawAll, 120);
	});
	document.body.setAttribute('data-ready', '1');
})();
