// Refer console: live regions and countdowns. No inline script anywhere
// (the content security policy forbids it); pages work without this file.
"use strict";

// Each [data-live] region listens to its server-sent events and, on a
// change, fetches its fragment again (debounced). While the user is typing
// in the region, the refresh waits until they leave the field.
function liveRegions() {
  document.querySelectorAll("[data-live]").forEach((region) => {
    let timer = null;
    let pending = false;
    const typing = () =>
      region.contains(document.activeElement) &&
      document.activeElement.matches("input, textarea, select") &&
      document.activeElement.value !== "";
    const refresh = async () => {
      if (typing()) {
        pending = true;
        return;
      }
      pending = false;
      const answer = await fetch(region.dataset.fragment, { credentials: "same-origin" });
      // A service that refused answers with its status and says why in
      // words: shown as well (a session that ended leads to sign-in).
      if (answer.ok || answer.status >= 500 || answer.status === 404) {
        region.innerHTML = await answer.text();
        region.dataset.refreshed = String(Number(region.dataset.refreshed || 0) + 1);
        countdowns();
        localTimes(region);
      }
    };
    region.addEventListener("focusout", () => {
      if (pending) setTimeout(refresh, 100);
    });
    const source = new EventSource(region.dataset.live);
    source.addEventListener("change", () => {
      clearTimeout(timer);
      timer = setTimeout(refresh, 200);
    });
  });
}

// A deadline within the next day shows the minutes and seconds left too.
function countdowns() {
  document.querySelectorAll("time[data-deadline]").forEach((t) => {
    if (!t.dataset.at) t.dataset.at = t.textContent;
    const left = Number(t.dataset.deadline) - Date.now();
    if (left > 0 && left < 86400000) {
      const minutes = Math.floor(left / 60000);
      const seconds = Math.floor((left % 60000) / 1000);
      t.textContent = `${t.dataset.at} (${minutes}:${String(seconds).padStart(2, "0")})`;
    } else {
      t.textContent = t.dataset.at;
    }
  });
}

// An instant ("as of") worded in the reader's language, in the coalition's
// time zone (not the device's); the server's text, in the same zone, stays
// for pages read without scripts.
function localTimes(root) {
  const lang = document.documentElement.lang || undefined;
  (root || document).querySelectorAll("time[data-local]").forEach((t) => {
    const at = new Date(Number(t.dataset.local));
    t.textContent = at.toLocaleString(lang, {
      timeZone: t.dataset.zone || "UTC",
      year: "numeric",
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      timeZoneName: "short",
    });
  });
}

// "Use my current location": the phone's position goes into the hidden
// coords field and the place field says so; the button shows only where
// the browser can ask. Typing a place again drops the position.
function currentLocation() {
  const button = document.getElementById("use-location");
  const place = document.getElementById("place");
  const coords = document.getElementById("coords");
  const status = document.getElementById("location-status");
  if (!button || !place || !coords || !navigator.geolocation) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    button.disabled = true;
    if (status) status.textContent = "";
    navigator.geolocation.getCurrentPosition(
      (at) => {
        coords.value = `${at.coords.latitude.toFixed(5)},${at.coords.longitude.toFixed(5)}`;
        place.value = button.dataset.here;
        button.disabled = false;
      },
      () => {
        // Said, not only focused: a refusal is otherwise silent.
        if (status) status.textContent = button.dataset.refused;
        button.disabled = false;
        place.focus();
      },
      { enableHighAccuracy: true, timeout: 15000 },
    );
  });
  place.addEventListener("input", () => {
    if (place.value !== button.dataset.here) coords.value = "";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  currentLocation();
  liveRegions();
  localTimes();
  countdowns();
  setInterval(countdowns, 1000);
});
