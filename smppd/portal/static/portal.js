// smppd portal: progressive enhancement only. Every page works without this file:
// the send form previews on submit, a job's page shows its progress when loaded.
"use strict";
document.documentElement.classList.add("js");

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// The send form: parts, encoding, characters and cost as you type, computed by the
// daemon with the same code that prices a message (GET /portal/send/preview).
function sendPreview(form) {
  const fields = {};
  form.querySelectorAll("[data-preview-field]").forEach((el) => { fields[el.dataset.previewField] = el; });
  const update = debounce(async () => {
    const query = new URLSearchParams({ to: form.to.value, from: form.from.value, text: form.text.value });
    try {
      const response = await fetch(form.dataset.preview + "?" + query, { credentials: "same-origin" });
      if (!response.ok) return;
      const info = await response.json();
      fields.characters.textContent = info.characters;
      fields.parts.textContent = info.parts;
      fields.encoding.textContent = info.encoding || "–";
      fields.points.textContent = info.points === null || info.points === undefined ? "–" : info.points;
      fields.error.textContent = info.error || "";
    } catch (e) { /* the preview comes back on submit */ }
  }, 250);
  ["to", "from", "text"].forEach((name) => form[name].addEventListener("input", update));
}

// A job's page: progress, counts and rate refreshed every 2 seconds until it ends.
function liveProgress(section) {
  const live = {};
  section.querySelectorAll("[data-live]").forEach((el) => { live[el.dataset.live] = el; });
  const tick = async () => {
    try {
      const response = await fetch(section.dataset.progressUrl, { credentials: "same-origin" });
      if (!response.ok) return;
      const job = await response.json();
      live.progress.value = job.percent;
      live.progress.textContent = job.percent + "%";
      live.done.textContent = job.done.toLocaleString();
      live.percent.textContent = job.percent;
      live.rate.textContent = job.rate;
      if (job.state !== live.state.dataset.raw) { window.location.reload(); return; }
      if (job.state === "stopped" || job.state === "completed") return;
    } catch (e) { /* try again on the next tick */ }
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-preview]");
  if (form) sendPreview(form);
  document.querySelectorAll("[data-progress-url]").forEach(liveProgress);
  // A destructive button asks first (without JavaScript it does not; a stopped job
  // has its own confirmation page).
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
});
