// Live status: ONE WebSocket per page for the databases it shows (elements with data-live-db).
// The socket is a hint (STYLE 12): the server sends a snapshot of every database on each
// (re)connect, pushes changes after that; a closed socket is reopened with backoff, forever,
// except when the session is gone (code 4401). No polling. Page code listens for the
// `live:status` event on document; `detail` is one status message (replication.selectors).
"use strict";

(function () {
  const CLOSE_UNAUTHENTICATED = 4401;
  const MIN_DELAY_MS = 500;
  const MAX_DELAY_MS = 10000;

  const uids = [...new Set(
    [...document.querySelectorAll("[data-live-db]")].map((el) => el.dataset.liveDb).filter(Boolean)
  )];
  if (!uids.length) return;

  const indicator = document.querySelector("[data-live-indicator]");
  const newest = new Map(); // database uid -> time (ms) of the newest push applied
  let delay = MIN_DELAY_MS;
  let leaving = false;
  let connects = 0;

  function show(state, text) {
    document.documentElement.dataset.live = state;
    if (!indicator) return;
    indicator.hidden = false;
    indicator.dataset.state = state;
    indicator.querySelector("[data-live-text]").textContent = text;
  }

  function deliver(message) {
    if (message.kind !== "status" || message.database === undefined) return;
    // A snapshot (first on each connection) is always applied; a push older than one already
    // applied is stale (e.g. the last word of a job that a newer one replaced) and ignored.
    // Snapshots do not raise that bar: they are read from rows saved once a second, so a push
    // that raced one is usually fresher even when its `time` is a little older.
    if (!message.snapshot) {
      const when = Date.parse(message.time);
      const last = newest.get(message.database);
      if (last !== undefined && when < last) return;
      newest.set(message.database, when);
    }
    document.dispatchEvent(new CustomEvent("live:status", { detail: message }));
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = uids.map((uid) => "db=" + encodeURIComponent(uid)).join("&");
    const socket = new WebSocket(`${scheme}://${location.host}/ws/status/?${query}`);
    socket.addEventListener("open", () => {
      delay = MIN_DELAY_MS;
      connects += 1;
      document.documentElement.dataset.liveConnects = String(connects);
      show("live", "Live");
    });
    socket.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (err) { return; }
      deliver(message);
    });
    socket.addEventListener("close", (event) => {
      if (leaving) return;
      if (event.code === CLOSE_UNAUTHENTICATED) {
        show("signed-out", "Signed out: reload to sign in");
        return;
      }
      show("reconnecting", "Reconnecting…");
      // Backoff with jitter so that many pages do not come back in step after a restart.
      const wait = delay * (0.75 + Math.random() * 0.5);
      delay = Math.min(delay * 2, MAX_DELAY_MS);
      setTimeout(connect, wait);
    });
  }

  window.addEventListener("pagehide", () => { leaving = true; });
  // Back from the back/forward cache the old socket is gone: open a new one.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) { leaving = false; connect(); }
  });
  // After DOMContentLoaded, when the page code (replica.js) listens already.
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", connect);
  } else {
    connect();
  }
})();
