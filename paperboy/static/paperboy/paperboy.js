// Progressive enhancement only: every form works without this file.
(function () {
  "use strict";
  // Pre-fill the time zone from the browser, unless the reader already chose one.
  document.querySelectorAll("select[data-browser-timezone]").forEach(function (select) {
    try {
      var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (zone && select.value === "UTC" && select.querySelector('option[value="' + zone + '"]')) {
        select.value = zone;
      }
    } catch (e) { /* old browser: UTC stays */ }
  });
  // Show the weekday only for weekly digests.
  document.querySelectorAll("form[data-preferences]").forEach(function (form) {
    var weekday = form.querySelector("[data-weekday]");
    if (!weekday) return;
    function sync() {
      var weekly = form.querySelector('input[name="frequency"][value="weekly"]');
      weekday.hidden = !(weekly && weekly.checked);
    }
    form.addEventListener("change", sync);
    sync();
  });
})();
