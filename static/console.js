// Small progressive enhancements; every page works without this file.
"use strict";

// Show times in the browser's time zone (the server renders UTC).
function localizeTimes(root) {
  const fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  root.querySelectorAll("time[datetime][data-local]").forEach((el) => {
    const when = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      el.title = el.textContent.trim();
      el.textContent = fmt.format(when);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => localizeTimes(document));
