// Replica Of pages: the badges of the database list, the live panel of a database (source rows,
// charts, sync buttons, source URL dialog) and the Replica Of section of Database → Edit.
// Status arrives as `live:status` events from live.js; every page also works from the snapshot
// the server rendered into it, before (or without) the socket.
"use strict";

(function () {
  function readJson(id, fallback) {
    const el = document.getElementById(id);
    if (!el) return fallback;
    try { return JSON.parse(el.textContent); } catch (err) { return fallback; }
  }

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) if (child) el.append(child);
    return el;
  }

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      body: body || new URLSearchParams(),
      headers: { "X-CSRFToken": csrfToken() },
      credentials: "same-origin",
    });
    let data = {};
    try { data = await response.json(); } catch (err) { data = {}; }
    if (!response.ok && !data.errors) {
      data.errors = { __all__: [`The server answered ${response.status}: try again.`] };
    }
    return data;
  }

  const LABELS = readJson("replica-labels", {});
  const label = (status) => LABELS[status] || status;
  const localTime = (iso) => new Date(iso).toLocaleTimeString([], {
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  // A time of today as the time; of another day with its date first (YYYY-MM-DD, local).
  const when = (iso) => {
    const d = new Date(iso);
    const today = new Date();
    if (d.toDateString() === today.toDateString()) return localTime(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${localTime(iso)}`;
  };
  const number = (n) => Math.round(n).toLocaleString();

  // ------------------------------------------------------------ badges

  // The one status pill (templates/replication/_badge.html renders the same markup): paints
  // `el` (a new span when none is given) and returns it.
  function renderBadge(status, el = h("span", {})) {
    el.className = `badge replica-${status}`;
    el.dataset.badge = "";
    el.textContent = label(status);
    return el;
  }

  // The Replica Of cell of the database list (templates/replication/_database_badges.html).
  function renderDatabaseBadges(cell, status) {
    const parts = [];
    if (status.replica_sync !== "disabled") parts.push(renderBadge(status.status));
    if (status.destinations) {
      parts.push(h("span", { class: "badge replica-source", text: `Source of ${status.destinations}` }));
    }
    if (!parts.length) parts.push(h("span", { class: "muted", text: "—" }));
    cell.replaceChildren(...parts.flatMap((p, i) => (i ? [" ", p] : [p])));
  }

  // ------------------------------------------------------------ what to do after an error

  // Advice by the kind of the error (replication.live.ADVICE); a source of this cluster has a
  // `bdb_uid`, and an admin can restart it with its current password from here.
  const ADVICE = readJson("replica-advice", {});
  const isInternal = (source) => source.bdb_uid !== null && source.bdb_uid !== undefined;

  function errorKind(source, status) {
    return source.last_error_kind || status.last_error_kind || "";
  }

  function advice(kind, source, admin) {
    if (kind === "auth" && isInternal(source) && admin) return ADVICE.auth_internal;
    return ADVICE[kind] || ADVICE.default || "";
  }

  // ------------------------------------------------------------ charts (SVG, no library)

  // The ranges of the charts: each reads `sync_source_stats` at an interval the control Redis
  // keeps that long (replication/series.py), and is fetched again every `refresh` ms.
  const RANGES = {
    "15m": { seconds: 900, interval: "1sec", step: 1, refresh: 5000, label: "15 min ago" },
    "1h": { seconds: 3600, interval: "10sec", step: 10, refresh: 10000, label: "1 h ago" },
    "12h": { seconds: 43200, interval: "1min", step: 60, refresh: 60000, label: "12 h ago" },
    "1w": { seconds: 604800, interval: "15min", step: 900, refresh: 300000, label: "1 week ago" },
  };
  const CHART_W = 300;
  const CHART_H = 70;
  const svgNS = "http://www.w3.org/2000/svg";

  const bytes = (n) => {
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${i ? n.toFixed(n < 10 ? 1 : 0) : Math.round(n)} ${units[i]}`;
  };
  const duration = (s) => {
    s = Math.max(0, Math.round(s));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  };

  // One chart: a line (two for the ingress: on the wire and decompressed) per key of `keys`.
  function chart(title, unit, keys, format = number, legends = null) {
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", `0 0 ${CHART_W} ${CHART_H}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "chart-plot");
    svg.setAttribute("aria-hidden", "true");
    const grid = document.createElementNS(svgNS, "path");
    grid.setAttribute("class", "chart-grid");
    grid.setAttribute("d", `M0 ${CHART_H / 2} H${CHART_W} M0 ${CHART_H - 0.5} H${CHART_W}`);
    svg.append(grid);
    const lines = keys.map((key, i) => {
      const area = document.createElementNS(svgNS, "path");
      area.setAttribute("class", i ? "chart-area chart-area-2" : "chart-area");
      const line = document.createElementNS(svgNS, "path");
      line.setAttribute("class", i ? "chart-line chart-line-2" : "chart-line");
      line.dataset.key = key;
      svg.append(area, line);
      return { key, area, line };
    });
    const now = h("span", { class: "chart-now" });
    const max = h("span", { class: "chart-max" });
    const start = h("span", { text: RANGES["15m"].label });
    const legend = legends ? h("div", { class: "chart-legend" }, ...legends.map((text, i) =>
      h("span", { class: i ? "chart-key chart-key-2" : "chart-key", text }))) : null;
    const figure = h("figure", { class: "chart", "data-chart": keys[0] },
      h("figcaption", {}, h("span", { class: "chart-title", text: title }), now),
      h("div", { class: "chart-box" }, max, svg),
      h("div", { class: "chart-axis" }, start, h("span", { text: "now" })), legend);
    return { figure, lines, now, max, start, unit, format };
  }

  // Draws `points` (t in unix s) of the range; intervals with no sample (paused, stopped, no
  // job) are gaps in the line, never drawn as 0 nor bridged.
  function drawChart(c, points, range) {
    const end = Date.now() / 1000;
    const start = end - range.seconds;
    c.start.textContent = range.label;
    const shown = points.filter((p) => p.t >= start - range.step);
    let top = 1;
    for (const { key } of c.lines) {
      for (const p of shown) if (p[key] !== null && p[key] !== undefined) top = Math.max(top, p[key]);
    }
    const x = (t) => Math.max(0, ((t - start) / range.seconds) * CHART_W).toFixed(1);
    const y = (v) => (CHART_H - (v / top) * (CHART_H - 4) - 1).toFixed(1);
    for (const { key, line, area } of c.lines) {
      const segments = [];
      let current = null;
      let prev = null;
      for (const p of shown) {
        const v = p[key];
        if (v === null || v === undefined) { current = null; prev = null; continue; }
        if (!current || (prev !== null && p.t - prev > 2 * range.step + 1)) {
          current = [];
          segments.push(current);
        }
        current.push([x(p.t), y(v)]);
        prev = p.t;
      }
      line.setAttribute("d", segments.map((seg) => "M" + seg.map((pt) => pt.join(",")).join(" L")).join(" "));
      area.setAttribute("d", segments.map((seg) =>
        `M${seg[0][0]},${CHART_H} L` + seg.map((pt) => pt.join(",")).join(" L") + ` L${seg[seg.length - 1][0]},${CHART_H} Z`).join(" "));
      line.dataset.points = String(segments.reduce((n, seg) => n + seg.length, 0));
      line.dataset.segments = String(segments.length);
    }
    const key = c.lines[0].key;
    const valued = shown.filter((p) => p[key] !== null && p[key] !== undefined);
    const latest = valued.length ? valued[valued.length - 1] : null;
    if (!latest) c.now.textContent = "no data";
    else if (end - latest.t > 2 * range.step + 10) c.now.textContent = `no data since ${when(new Date(latest.t * 1000).toISOString())}`;
    else c.now.textContent = `${c.format(latest[key])} ${c.unit}`;
    c.max.textContent = `max ${c.format(top)}`;
  }

  // ------------------------------------------------------------ the live panel

  function setupPanel(panel) {
    const uid = Number(panel.dataset.liveDb);
    const admin = panel.dataset.admin === "1";
    const list = panel.querySelector("[data-source-list]");
    const aggregate = panel.querySelector("[data-replica-aggregate]");
    const none = panel.querySelector("[data-replica-none]");
    const rangeBox = panel.querySelector("[data-chart-range]");
    const rows = new Map(); // `uid:name` -> row elements and chart state
    let generationKey = "";
    let range = RANGES["15m"];
    let rangeKey = "15m";
    let fetchTimer = null;
    let fetchSeq = 0;
    const rowKey = (source) => `${source.uid}:${source.name}`;

    function buildRow(source) {
      const name = h("span", { class: "source-name", text: source.name });
      const badge = h("span", { "data-source-status": true });
      const detail = h("span", { class: "source-detail", "data-source-detail": true });
      // A compressed link (sync gateway): bytes of the stream per byte on the wire.
      const ratio = h("span", { class: "source-ratio", "data-source-ratio": true, hidden: true });
      const bar = h("progress", { max: "100", value: "0", "aria-label": `Full sync of ${source.name}` });
      const percent = h("span", { class: "progress-percent" });
      const figures = h("span", { class: "progress-figures", "data-progress-figures": true });
      const progress = h("div", { class: "progress", hidden: true }, bar, percent, figures);
      const error = h("div", { class: "source-error", role: "alert", hidden: true });
      const lag = chart("Lag", "ms", ["lag"]);
      const commands = chart("Commands/s", "/s", ["commands"]);
      const ingress = chart("Ingress/s", "/s", ["wire", "inflated"], bytes, ["on the wire", "decompressed"]);
      const charts = h("div", { class: "charts" }, lag.figure, commands.figure, ingress.figure);
      const li = h("li", { class: "source", "data-source": String(source.uid) },
        h("div", { class: "source-head" }, name, badge, detail, ratio), progress, error, charts);
      return { li, badge, detail, ratio, bar, percent, figures, progress, error, charts: [lag, commands, ingress], points: [], rate: null };
    }

    function draw(row) { for (const c of row.charts) drawChart(c, row.points, range); }

    // The series of every source for the chosen range, from the API (the same figures as
    // GET /v1/bdbs/{uid}/sync_source_stats); rates per second of each interval.
    async function fetchSeries() {
      clearTimeout(fetchTimer);
      const seq = ++fetchSeq;
      const wanted = range;
      const stime = new Date(Date.now() - wanted.seconds * 1000).toISOString();
      const url = `${panel.dataset.statsUrl}?interval=${wanted.interval}&stime=${encodeURIComponent(stime)}`;
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (response.ok && seq === fetchSeq) {
          const body = await response.json();
          const bySource = new Map(body.sync_source_stats.map((s) => [s.uid, s.intervals]));
          for (const row of rows.values()) {
            const intervals = bySource.get(row.uid) || [];
            row.points = intervals.map((i) => ({
              t: Date.parse(i.stime) / 1000,
              lag: i.lag,
              commands: i.commands / wanted.step,
              wire: i.ingress_bytes / wanted.step,
              inflated: i.ingress_bytes_decompressed / wanted.step,
            }));
            draw(row);
          }
          panel.dataset.chartLoaded = `${rangeKey}:${wanted.interval}`;
        }
      } catch (err) { /* the next refresh tries again */ }
      if (seq === fetchSeq) fetchTimer = setTimeout(fetchSeries, wanted.refresh);
    }

    rangeBox.querySelectorAll("[data-range]").forEach((button) => {
      button.addEventListener("click", () => {
        rangeKey = button.dataset.range;
        range = RANGES[rangeKey];
        panel.dataset.chartRange = rangeKey;
        delete panel.dataset.chartLoaded;
        rangeBox.querySelectorAll("[data-range]").forEach((b) => {
          b.setAttribute("aria-pressed", String(b === button));
        });
        for (const row of rows.values()) { row.points = []; draw(row); }
        fetchSeries();
      });
    });

    // Bytes, keys, rate and ETA of a full sync, beside the %; the rate from the change of the
    // transferred bytes (or loaded keys) between two statuses a second or more apart.
    function progressFigures(row, source, t) {
      const done = source.rdb_transferred || 0;
      const keys = source.keys_loaded;
      const pct = source.progress;
      const last = row.rate;
      if (!last || t < last.t) row.rate = { t, done, keys, pct, bps: null, kps: null, pps: null };
      else if (t - last.t >= 1) {
        const dt = t - last.t;
        row.rate = {
          t, done, keys, pct,
          bps: (done - last.done) / dt,
          kps: keys !== null && keys !== undefined && last.keys !== null && last.keys !== undefined ? (keys - last.keys) / dt : null,
          pps: pct !== null && last.pct !== null ? (pct - last.pct) / dt : null,
        };
      }
      const r = row.rate;
      const parts = [source.rdb_size ? `${bytes(done)} of ${bytes(source.rdb_size)}` : `${bytes(done)} received`];
      if (keys !== null && keys !== undefined) parts.push(`${number(keys)} keys`);
      if (r.bps !== null && r.bps > 0) parts.push(`${bytes(r.bps)}/s`);
      else if (r.kps !== null && r.kps > 0) parts.push(`${number(r.kps)} keys/s`);
      let eta = "ETA –";
      if (source.rdb_size && r.bps > 0) eta = `ETA ${duration((source.rdb_size - done) / r.bps)}`;
      else if (pct !== null && r.pps > 0) eta = `ETA ${duration((100 - pct) / r.pps)}`;
      parts.push(eta);
      return parts.join(" · ");
    }

    function renderSource(row, source, status) {
      const sync = status.replica_sync;
      let key = source.status;
      if (sync === "stopped" || sync === "paused") key = sync;
      renderBadge(key, row.badge);
      row.li.dataset.status = key;
      let detail = "";
      const showProgress = key === "syncing";
      if (key === "syncing") {
        const pct = source.progress === null ? 0 : Math.max(0, Math.min(100, source.progress));
        row.bar.value = pct;
        row.percent.textContent = `${Math.floor(pct)} %`;
        row.figures.textContent = progressFigures(row, source, (Date.parse(status.time) || Date.now()) / 1000);
        detail = "full sync";
      } else if (key === "in-sync") {
        detail = `lag ${source.lag === null ? "–" : number(source.lag)} ms`;
        // The source cannot be sampled now: the lag is unknown, at least this much.
        if (source.lag !== null && source.lag_exact === false) detail = `lag ≥ ${number(source.lag)} ms`;
        if (source.last_update) detail += ` · last update ${when(source.last_update)}`;
      } else if (key === "out-of-sync") {
        detail = `retry ${source.retries}`;
        if (source.lag !== null && source.lag_exact === false) detail += ` · lag ≥ ${number(source.lag)} ms`;
        if (source.last_error) detail += ` · ${source.last_error}`;
      } else if (key === "paused") {
        detail = source.last_update ? `last update ${when(source.last_update)}` : "";
      }
      if (key !== "syncing") row.rate = null;
      row.detail.textContent = detail;
      const wire = source.ingress_bytes || 0;
      const inflated = source.ingress_bytes_decompressed || 0;
      row.ratio.hidden = !(wire > 0 && inflated > wire);
      if (!row.ratio.hidden) {
        row.ratio.textContent = `compression ${(inflated / wire).toFixed(1)}× (${number(wire)} bytes on the wire)`;
      }
      row.progress.hidden = !showProgress;
      const error = key === "stopped" ? (source.last_error || status.last_error) : "";
      row.error.hidden = !error;
      if (error) {
        const kind = errorKind(source, status);
        const parts = [
          h("p", {}, h("strong", { text: "Sync stopped: " }), error),
          h("p", { class: "advice", text: advice(kind, source, admin) }),
        ];
        if (admin && isInternal(source) && kind === "auth") {
          const form = h("form", { method: "post", action: panel.dataset.syncUrl, class: "inline" },
            h("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrfToken() }),
            h("input", { type: "hidden", name: "action", value: "credentials" }),
            h("input", { type: "hidden", name: "source", value: String(source.uid) }),
            h("button", { type: "submit", class: "button", text: "Use the new password" }));
          form.dataset.confirm = "Sync again with the source's current password? This flushes the destination and loads everything again.";
          form.dataset.confirmButton = "Flush and sync";
          parts.push(form);
        }
        row.error.replaceChildren(...parts);
      }
    }

    function render(status) {
      const key = status.sources.map(rowKey).join("|");
      if (key !== generationKey) {
        // Other sources (a source in the place of another has another name): rows, and their
        // charts, are new; the history the server keeps was dropped with the old sources.
        const changed = generationKey !== "";
        generationKey = key;
        const kept = new Map(rows);
        rows.clear();
        list.replaceChildren();
        for (const source of status.sources) {
          const row = kept.get(rowKey(source)) || buildRow(source);
          row.uid = source.uid;
          rows.set(rowKey(source), row);
          list.append(row.li);
          draw(row);
        }
        rangeBox.hidden = status.sources.length === 0;
        if (changed) fetchSeries();
      }
      for (const source of status.sources) renderSource(rows.get(rowKey(source)), source, status);
      none.hidden = status.sources.length > 0;
      aggregate.replaceChildren();
      if (status.replica_sync !== "disabled") aggregate.append(renderBadge(status.status));
      panel.dataset.replicaSync = status.replica_sync;
      panel.querySelectorAll("[data-replica-actions] [data-when]").forEach((form) => {
        form.hidden = !form.dataset.when.split(" ").includes(status.replica_sync);
      });
    }

    const initial = readJson("replica-live", null);
    if (initial) render(initial);
    document.addEventListener("live:status", (event) => {
      if (event.detail.database === uid) render(event.detail);
    });
    fetchSeries();
    // The time axis moves between fetches.
    setInterval(() => { for (const row of rows.values()) draw(row); }, 2000);
  }

  // ------------------------------------------------------------ source URL dialog

  function setupSourceUrl(opener) {
    const dialog = document.getElementById("source-url-dialog");
    if (!dialog) return;
    const value = dialog.querySelector("#source-url-value");
    const error = dialog.querySelector("[data-dialog-error]");
    const status = dialog.querySelector("[data-dialog-status]");
    const ask = dialog.querySelector("[data-regenerate-ask]");
    const confirm = dialog.querySelector("[data-regenerate-confirm]");

    function fail(message) { error.textContent = message; error.hidden = false; }

    async function reveal() {
      error.hidden = true;
      const data = await post(dialog.dataset.sourceUrl);
      if (data.errors) { fail(Object.values(data.errors)[0][0]); return; }
      value.value = data.url;
    }

    opener.addEventListener("click", async () => {
      value.value = "";
      status.textContent = "";
      ask.hidden = false;
      confirm.hidden = true;
      dialog.showModal();
      await reveal();
      value.focus();
      value.select();
    });
    dialog.querySelector("[data-regenerate]").addEventListener("click", () => {
      ask.hidden = true;
      confirm.hidden = false;
      dialog.querySelector("[data-regenerate-no]").focus();
    });
    dialog.querySelector("[data-regenerate-no]").addEventListener("click", () => {
      confirm.hidden = true;
      ask.hidden = false;
      dialog.querySelector("[data-regenerate]").focus();
    });
    dialog.querySelector("[data-regenerate-yes]").addEventListener("click", async () => {
      const data = await post(dialog.dataset.regenerateUrl);
      confirm.hidden = true;
      ask.hidden = false;
      if (data.errors) { fail(Object.values(data.errors)[0][0]); return; }
      await reveal();
      status.textContent = "Password regenerated. The URL above holds the new one.";
      value.focus();
    });
    dialog.addEventListener("close", () => { value.value = ""; opener.focus(); });
  }

  // ------------------------------------------------------------ Database → Edit → Replica Of

  function setupEdit(section) {
    const form = section.closest("form");
    const list = section.querySelector("[data-source-list]");
    const empty = section.querySelector("[data-no-sources]");
    const hidden = form.querySelector("input[name=sources]");
    const confirmFlush = form.querySelector("input[name=confirm_flush]");
    const dialog = document.getElementById("add-source-dialog");
    const dialogForm = dialog.querySelector("[data-add-source-form]");
    const candidates = readJson("replica-candidates", []);
    const saved = readJson("replica-saved", []);
    let rows = readJson("replica-rows", []);
    const maxSources = Number(section.dataset.maxSources) || 32;
    const counter = section.querySelector("[data-source-counter]");
    const limitError = section.querySelector("[data-limit-error]");

    function sourcesChanged() {
      const kept = rows.filter((r) => r.keep !== undefined).map((r) => r.keep);
      return kept.length !== rows.length || kept.length !== saved.length ||
        saved.some((uid) => !kept.includes(uid));
    }

    function renderRows() {
      list.replaceChildren(...rows.map((row, index) => {
        const tags = [row.kind === "internal" ? "this cluster" : "external"];
        if (row.encryption) tags.push("TLS");
        if (row.compression) tags.push("compressed");
        const remove = h("button", {
          type: "button", class: "button button-quiet", "aria-label": `Remove source ${row.name}`, text: "Remove",
        });
        remove.addEventListener("click", () => {
          rows.splice(index, 1);
          renderRows();
          section.querySelector("[data-add-source]").focus();
        });
        // The pencil: edit an external source in place (URL, password, TLS, compression).
        let edit = null;
        if (row.kind === "external") {
          edit = h("button", {
            type: "button", class: "button button-quiet", "aria-label": `Edit source ${row.name}`,
            "aria-haspopup": "dialog", "data-edit-source": index, text: "✎ Edit",
          });
          edit.addEventListener("click", () => openDialog(index, edit));
        }
        return h("li", { class: "source source-edit" + (row.error ? " has-error" : "") },
          h("div", { class: "source-head" },
            h("span", { class: "source-name", text: row.name }),
            h("span", { class: "muted", text: tags.join(" · ") }),
            row.keep === undefined ? h("span", { class: "badge replica-new", text: row.edited ? "changed" : "new" }) : null,
            edit,
            remove),
          row.error ? h("p", { class: "field-error", role: "alert", text: row.error }) : null);
      }));
      empty.hidden = rows.length > 0;
      hidden.value = JSON.stringify(rows.map(({ error, ...row }) => row));
      counter.textContent = `${rows.length} of ${maxSources}`;
      counter.classList.toggle("is-full", rows.length >= maxSources);
      limitError.hidden = rows.length <= maxSources;
      if (rows.length > maxSources) {
        limitError.textContent = `A destination has at most ${maxSources} sources: remove ${rows.length - maxSources}.`;
      }
    }

    // The source a checked row would duplicate (same database, or same host:port), or null.
    function duplicateOf(source, except) {
      const endpoint = (row) => {
        if (row.kind !== "internal") return row.name;
        const c = candidates.find((x) => x.uid === row.database || x.name === row.name);
        return c ? c.endpoint : null;
      };
      const wanted = endpoint(source);
      return rows.find((row, i) => i !== except && (
        (source.database !== undefined && row.database === source.database) ||
        (row.kind === "internal" && source.kind === "internal" && row.name === source.name) ||
        (wanted !== null && endpoint(row) === wanted))) || null;
    }

    // -- the dialog
    const kindInputs = dialog.querySelectorAll("input[name=kind]");
    const tlsToggle = dialog.querySelector("input[name=encryption]");
    const tlsFields = dialog.querySelector("[data-tls-fields]");
    const certFile = dialog.querySelector("[data-cert-file]");
    const certText = dialog.querySelector("textarea[name=server_cert]");
    const checking = dialog.querySelector("[data-checking]");
    const submit = dialog.querySelector("[data-add-submit]");

    function kind() { return dialog.querySelector("input[name=kind]:checked").value; }

    function showKind() {
      dialog.querySelectorAll("[data-kind-panel]").forEach((panel) => {
        panel.hidden = panel.dataset.kindPanel !== kind();
      });
    }

    function clearErrors() {
      dialog.querySelectorAll(".field-error[data-dynamic]").forEach((el) => el.remove());
      dialog.querySelectorAll(".has-error").forEach((el) => el.classList.remove("has-error"));
      dialog.querySelectorAll("[data-error-for]").forEach((el) => { el.hidden = true; el.textContent = ""; });
    }

    function showError(field, message) {
      const slot = dialog.querySelector(`[data-error-for="${field}"]`);
      if (slot) { slot.textContent = message; slot.hidden = false; return; }
      const input = dialog.querySelector(`[name="${field}"]`);
      const box = input ? input.closest(".field") : null;
      if (!box) { showError("__all__", message); return; }
      box.classList.add("has-error");
      box.append(h("p", { class: "field-error", role: "alert", "data-dynamic": true, text: message }));
    }

    function renderCandidates() {
      const chosen = new Set(rows.filter((r) => r.database !== undefined).map((r) => r.database));
      const box = dialog.querySelector("[data-candidates]");
      box.replaceChildren(...candidates.map((c) => {
        const taken = chosen.has(c.uid) || rows.some((r) => r.kind === "internal" && r.name === c.name);
        const reason = c.reason || (taken ? "already a source" : "");
        const id = `candidate-${c.uid}`;
        const input = h("input", { type: "radio", name: "database", value: String(c.uid), id, disabled: !!reason });
        return h("label", { class: "candidate" + (reason ? " is-disabled" : ""), for: id },
          input,
          h("span", { class: "candidate-name", text: c.name }),
          h("code", { class: "muted", text: c.endpoint }),
          reason ? h("span", { class: "candidate-reason", text: reason }) : null);
      }));
      if (!candidates.length) box.append(h("p", { class: "muted", text: "This cluster has no databases." }));
    }

    const title = dialog.querySelector("#add-source-title");
    const uriInput = dialog.querySelector("input[name=uri]");
    const titles = { add: title.textContent, submit: submit.textContent };
    let editing = null; // index in rows of the source edited in place, or null: a new one
    let opener = section.querySelector("[data-add-source]");

    function openDialog(index, from) {
      dialogForm.reset();
      clearErrors();
      renderCandidates();
      editing = index;
      opener = from;
      dialog.querySelectorAll("input[name=kind]").forEach((input) => { input.disabled = index !== null; });
      uriInput.placeholder = "redis://:password@host:port";
      if (index === null) {
        title.textContent = titles.add;
        submit.textContent = titles.submit;
      } else {
        // What the source has now, except the password: paste the whole URL again.
        const row = rows[index];
        title.textContent = `Edit source ${row.name}`;
        submit.textContent = "Save source";
        dialog.querySelector("#source-kind-external").checked = true;
        uriInput.placeholder = row.uri_redacted || uriInput.placeholder;
        tlsToggle.checked = !!row.encryption;
        certText.value = row.server_cert || "";
        dialog.querySelector("[name=replication_tls_sni]").value = row.replication_tls_sni || "";
        dialog.querySelector("input[name=compression]").checked = !!row.compression;
      }
      showKind();
      tlsFields.hidden = !tlsToggle.checked;
      dialog.showModal();
      (index === null ? dialog.querySelector("input[name=kind]:checked") : uriInput).focus();
    }

    section.querySelector("[data-add-source]").addEventListener("click", (event) => {
      if (rows.length >= maxSources) {
        // Refused while adding, not at Save: the dialog does not open.
        limitError.textContent = `A destination has at most ${maxSources} sources: remove one to add another.`;
        limitError.hidden = false;
        return;
      }
      limitError.hidden = true;
      openDialog(null, event.currentTarget);
    });
    dialog.querySelector("[data-dialog-close]").addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      if (opener && opener.isConnected) opener.focus();
      else section.querySelector("[data-add-source]").focus();
    });
    kindInputs.forEach((input) => input.addEventListener("change", () => { clearErrors(); showKind(); }));
    tlsToggle.addEventListener("change", () => { tlsFields.hidden = !tlsToggle.checked; });
    certFile.addEventListener("change", async () => {
      const file = certFile.files[0];
      if (file) certText.value = await file.text();
    });

    dialogForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors();
      const body = new FormData();
      body.append("kind", kind());
      if (kind() === "internal") {
        const picked = dialog.querySelector("input[name=database]:checked");
        if (!picked) { showError("database", "Choose a database."); return; }
        body.append("database", picked.value);
      } else {
        for (const name of ["uri", "server_cert", "replication_tls_sni"]) {
          body.append(name, dialog.querySelector(`[name=${name}]`).value);
        }
        if (tlsToggle.checked) body.append("encryption", "on");
        if (dialog.querySelector("input[name=compression]").checked) body.append("compression", "on");
      }
      submit.disabled = true;
      checking.hidden = false;
      try {
        const data = await post(section.dataset.checkUrl, body);
        if (data.errors) {
          for (const [field, messages] of Object.entries(data.errors)) {
            const first = messages[0];
            showError(field, typeof first === "string" ? first : first.message);
          }
          const bad = dialog.querySelector(".has-error input, .has-error textarea");
          if (bad) bad.focus();
          return;
        }
        const twin = duplicateOf(data.source, editing);
        if (twin) {
          showError(kind() === "internal" ? "database" : "uri",
            `${twin.name} is already a source of ${section.dataset.destination}: a source is listed once.`);
          return;
        }
        if (editing === null) rows.push(data.source);
        else rows[editing] = { ...data.source, edited: true };
        renderRows();
        opener = null;
        dialog.close();
      } finally {
        submit.disabled = false;
        checking.hidden = true;
      }
    });

    form.addEventListener("submit", async (event) => {
      renderRows();
      if (!sourcesChanged() || confirmFlush.value) return;
      event.preventDefault();
      const name = section.dataset.destination;
      // Removing the last source flushes nothing: the data is kept and the database is writable.
      const ok = await window.confirmAction(rows.length ? {
        title: "Save and flush?",
        message: `The sources of ${name} change${rows.some((r) => r.edited) ? " (changing a source restarts the sync from scratch, for all its sources)" : ""}: saving flushes it (all its data is deleted) and loads everything again from its sources.`,
        confirmLabel: "Save and flush",
      } : {
        title: "Remove Replica Of?",
        message: `${name} stops being a replica: its data is kept as it is now, and it becomes writable by applications.`,
        confirmLabel: "Remove Replica Of",
      });
      if (ok) {
        confirmFlush.value = "on";
        form.submit();
      }
    });
    renderRows();
  }

  // The Verify card: while a verify runs, its progress and ETA from the API every second; when
  // it has ended, the page is loaded again to show the result.
  function setupVerify(card) {
    const active = card.querySelector("[data-verify-active]");
    if (!active) return;
    const bar = active.querySelector("[data-verify-bar]");
    const text = active.querySelector("[data-verify-text]");
    async function poll() {
      let runs = null;
      try {
        const response = await fetch(card.dataset.verifyUrl, { credentials: "same-origin" });
        if (response.ok) runs = await response.json();
      } catch (err) { runs = null; }
      const run = runs && runs[0];
      if (run && run.state !== "queued" && run.state !== "running") {
        location.reload();
        return;
      }
      if (run && run.state === "running") {
        if (run.progress !== null) bar.value = run.progress;
        const eta = run.eta_s === null ? "" : `, about ${Math.round(run.eta_s)} s left`;
        text.textContent = `${run.keys_done} of ${run.keys_total} keys${eta}`;
      }
      setTimeout(poll, 1000);
    }
    setTimeout(poll, 1000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.addEventListener("live:status", (event) => {
      document.querySelectorAll(`[data-replica-badge][data-live-db="${event.detail.database}"]`)
        .forEach((cell) => renderDatabaseBadges(cell, event.detail));
      document.querySelectorAll(`[data-replica-destinations][data-live-db="${event.detail.database}"]`)
        .forEach((el) => {
          const n = event.detail.destinations;
          el.textContent = n
            ? `${n} database${n === 1 ? "" : "s"} of this cluster cop${n === 1 ? "ies" : "y"} from it.`
            : "No database of this cluster copies from it.";
        });
    });
    document.querySelectorAll("[data-replica-panel]").forEach(setupPanel);
    document.querySelectorAll("[data-source-url-open]").forEach(setupSourceUrl);
    document.querySelectorAll("[data-replica-edit]").forEach(setupEdit);
    document.querySelectorAll("[data-verify]").forEach(setupVerify);
  });
})();
