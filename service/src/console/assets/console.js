// Tether console: live regions fed by Server-Sent Events, and confirmations for forms
// that cannot be undone. Plain script, no framework and no build step.
"use strict";

function follow(region) {
  const source = new EventSource(region.dataset.live);
  source.addEventListener("update", (event) => {
    region.innerHTML = event.data;
    region.removeAttribute("data-stale");
  });
  // The session ended (signed out elsewhere, or expired): the page says what to do.
  source.addEventListener("gone", () => {
    source.close();
    window.location.reload();
  });
  // The browser reconnects by itself; meanwhile the region shows it may be old.
  source.addEventListener("error", () => region.setAttribute("data-stale", "true"));
}

function confirmFirst(form) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
}

function copyButton(button) {
  button.hidden = false;
  button.addEventListener("click", () => {
    const target = document.getElementById(button.dataset.copy);
    navigator.clipboard.writeText(target.textContent.trim()).then(() => {
      button.textContent = "Copied";
    });
  });
}

document.querySelectorAll("[data-live]").forEach(follow);
document.querySelectorAll("form[data-confirm]").forEach(confirmFirst);
document.querySelectorAll("button[data-copy]").forEach(copyButton);
