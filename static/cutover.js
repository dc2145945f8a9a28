// The migration page ("Migrate with Replica Of"): the state lives in the console's database; this
// polls GET /v1/bdbs/{uid}/replica_migrate every second, updates the progress in place, and reloads
// the page when the step or the state changed (the server renders each step's buttons).
(function () {
  "use strict";

  function bytes(n) {
    if (n === null || n === undefined) return "?";
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return (i ? v.toFixed(1) : String(v)) + " " + units[i];
  }

  function setup(card) {
    const url = card.dataset.cutoverUrl;
    let delay = 1000;
    async function poll() {
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (response.ok) {
          const data = await response.json();
          if (data.step !== card.dataset.step || data.state !== card.dataset.state) {
            window.location.reload();
            return;
          }
          if (data.state === "done" || data.state === "failed" || data.state === "cancelled") return;
          const p = data.progress || {};
          const text = card.querySelector("[data-cutover-progress-text]");
          const bar = card.querySelector("[data-cutover-progress] progress");
          if (text && p.sources) {
            let line = bytes(p.rdb_transferred) + " of " + bytes(p.rdb_size);
            if (p.percent !== null && p.percent !== undefined) line += " (" + p.percent + "%)";
            line += ", " + (p.keys === null || p.keys === undefined ? "?" : p.keys) + " keys";
            if (p.eta_s !== null && p.eta_s !== undefined) line += ", about " + Math.round(p.eta_s) + " s left";
            text.textContent = line;
            if (bar && p.percent !== null && p.percent !== undefined) bar.value = p.percent;
          }
          const verify = card.querySelector("[data-cutover-verify]");
          if (verify && data.verify && (data.verify.state === "running" || data.verify.state === "queued")) {
            let line = data.verify.state === "queued" ? "Queued" : "Running: " + data.verify.keys_done + " of " + data.verify.keys_total + " keys";
            if (data.verify.eta_s !== null && data.verify.eta_s !== undefined) line += ", about " + Math.round(data.verify.eta_s) + " s left";
            verify.textContent = line;
          }
          delay = 1000;
        }
      } catch (err) {
        delay = Math.min(delay * 2, 15000); // the console restarts: back off, then carry on
      }
      window.setTimeout(poll, delay);
    }
    if (card.dataset.step) window.setTimeout(poll, delay);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-cutover]").forEach(setup);
  });
})();
