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

// Copy a text to the clipboard; outside a secure context (plain HTTP to a remote host) the
// asynchronous clipboard API is missing, so a selected textarea and execCommand stand in.
async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}

// Buttons with data-copy="<selector>" copy that element's text (or value) and say so.
function announce(text) {
  const status = document.querySelector(".copy-status");
  if (!status) return;
  status.textContent = text;
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => { status.textContent = ""; }, 2500);
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = "value" in source && source.tagName !== "PRE" ? source.value : source.textContent;
  try {
    await copyText(text);
    announce(button.dataset.copied || "Copied to the clipboard.");
  } catch (err) {
    announce("Copying failed: select the text and copy it by hand.");
  }
});

// A modal confirmation (keyboard: Tab between the buttons, Escape cancels; the focus starts on
// Cancel because what is confirmed is destructive). Resolves to true when confirmed.
function confirmAction({ title = "Are you sure?", message, confirmLabel = "Confirm" }) {
  return new Promise((resolve) => {
    const dialog = document.createElement("dialog");
    dialog.className = "dialog dialog-confirm";
    dialog.setAttribute("aria-labelledby", "confirm-title");
    dialog.setAttribute("aria-describedby", "confirm-message");
    dialog.innerHTML = `<h2 id="confirm-title"></h2><p id="confirm-message"></p>
      <div class="form-actions"><button type="button" class="button button-danger" value="yes"></button>
      <button type="button" class="button" value="no">Cancel</button></div>`;
    dialog.querySelector("h2").textContent = title;
    dialog.querySelector("p").textContent = message;
    dialog.querySelector("[value=yes]").textContent = confirmLabel;
    let answer = false;
    dialog.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      answer = button.value === "yes";
      dialog.close();
    });
    dialog.addEventListener("close", () => { dialog.remove(); resolve(answer); });
    document.body.appendChild(dialog);
    dialog.showModal();
    dialog.querySelector("[value=no]").focus();
  });
}
window.confirmAction = confirmAction;

// Forms with data-confirm="<message>" ask first (data-confirm-button names the action).
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.dataset || !form.dataset.confirm || form.dataset.confirmed) return;
  event.preventDefault();
  const ok = await confirmAction({
    message: form.dataset.confirm,
    confirmLabel: form.dataset.confirmButton || "Confirm",
  });
  if (ok) {
    form.dataset.confirmed = "1";
    form.submit();
  }
});

document.addEventListener("DOMContentLoaded", () => localizeTimes(document));

// The TLS section's trusted certificates: "+ Add certificate" adds a box, "Remove" empties
// and removes one (an empty box is ignored on save, so without this script the page works too).
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-trusted-list]").forEach((list) => {
    const rows = list.querySelector("[data-trusted-rows]");
    const add = list.querySelector("[data-trusted-add]");
    let n = 0;
    add.hidden = false;
    add.addEventListener("click", () => {
      const template = rows.lastElementChild;
      const row = template.cloneNode(true);
      const area = row.querySelector("textarea");
      n += 1;
      area.id = `client-cert-added-${n}`;
      area.value = "";
      row.querySelector("label").htmlFor = area.id;
      rows.appendChild(row);
      area.focus();
    });
    rows.addEventListener("click", (event) => {
      const button = event.target.closest("[data-trusted-remove]");
      if (!button) return;
      const row = button.closest("li");
      if (rows.children.length > 1) row.remove();
      else row.querySelector("textarea").value = "";
      add.focus();
    });
  });
});
