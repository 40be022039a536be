// Re-reads the status page every `data-refresh-secs` seconds and swaps in its #status, so the
// page stays current without a reload. Pauses while the tab is hidden, while a form field has
// focus, or when the operator unticks the box (remembered in localStorage). The page works
// without it: Retry is a plain form POST.
(function () {
  'use strict';
  var main = document.getElementById('status');
  if (!main) return;
  var secs = parseInt(main.getAttribute('data-refresh-secs'), 10) || 15;
  var label = document.getElementById('auto-refresh');
  var box = document.getElementById('auto-refresh-on');
  var state = document.getElementById('refresh-state');
  var KEY = 'bridge-admin-auto-refresh';

  if (box) {
    try { box.checked = localStorage.getItem(KEY) !== 'off'; } catch (e) { box.checked = true; }
    box.addEventListener('change', function () {
      try { localStorage.setItem(KEY, box.checked ? 'on' : 'off'); } catch (e) { /* private mode */ }
    });
  }
  if (label) label.hidden = false;

  function busy() {
    var active = document.activeElement;
    return !!active && active !== box && /^(INPUT|BUTTON|SELECT|TEXTAREA)$/.test(active.tagName);
  }

  function swap(doc, id) {
    var fresh = doc.getElementById(id);
    var current = document.getElementById(id);
    if (fresh && current) current.replaceWith(document.importNode(fresh, true));
    return !!fresh;
  }

  function tick() {
    if ((box && !box.checked) || document.visibilityState !== 'visible' || busy()) return;
    fetch(location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (response) {
        if (!response.ok && response.status !== 401) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, 'text/html');
        // No #status: the session ended and the answer is the sign-in form.
        if (!swap(doc, 'status')) { location.reload(); return; }
        swap(doc, 'updated');
        if (state) state.textContent = '';
      })
      .catch(function () {
        if (state) state.textContent = 'refresh failed at ' + new Date().toLocaleTimeString();
      });
  }

  setInterval(tick, secs * 1000);
})();
