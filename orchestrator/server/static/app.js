/* orchestrator's pages: local times, and live state changes from /api/events.
   No build step, no dependency. Event data is only ever set as text (textContent),
   and fragments come from the server's escaped templates. */
(function () {
  "use strict";

  var FINAL = ["Success", "Failed", "Cancelled", "Skipped", "TimedOut", "TriggerFailed"];

  function localTimes(root) {
    var nodes = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var value = nodes[i].getAttribute("datetime");
      if (!value) { continue; }
      var d = new Date(value);
      if (!isNaN(d.getTime())) {
        nodes[i].title = value;
        nodes[i].textContent = d.toLocaleString();
      }
    }
  }

  function stateClass(state) {
    return "state-" + String(state).toLowerCase();
  }

  function setLive(text, ok) {
    var el = document.getElementById("live");
    if (!el) { return; }
    el.textContent = text;
    el.className = "live " + (ok ? "live-on" : "live-off");
  }

  function paint(el, state) {
    el.textContent = state;
    el.className = el.className.replace(/\bstate-[a-z]+\b/g, "").trim() + " " + stateClass(state);
  }

  /* Set the new state on every element of one run or task run; false when none shows it. */
  function update(id, state) {
    var nodes = document.querySelectorAll('[data-node="' + CSS.escape(id) + '"]');
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var badge = node.querySelector(":scope > .head > .state, :scope > td > .state");
      if (badge) { paint(badge, state); }
      var rect = node.querySelector(":scope > td > svg > rect");
      if (rect) { rect.setAttribute("class", stateClass(state)); }
      node.setAttribute("data-state", state);
    }
    return nodes.length > 0;
  }

  function refresher(url, targetId, delay) {
    var timer = null;
    var busy = false;
    var again = false;
    function load() {
      timer = null;
      if (busy) { again = true; return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var target = document.getElementById(targetId);
          if (target) { target.innerHTML = html; localTimes(target); }
        })
        .catch(function () { /* the next change tries again */ })
        .then(function () {
          busy = false;
          if (again) { again = false; schedule(); }
        });
    }
    function schedule() {
      if (timer === null) { timer = setTimeout(load, delay); }
    }
    return schedule;
  }

  function watch(url, onChange) {
    var source = new EventSource(url);
    var opened = false;
    source.addEventListener("open", function () {
      setLive("live", true);
      if (opened) { onChange(null); } /* after a reconnection: catch up */
      opened = true;
    });
    source.addEventListener("error", function () { setLive("reconnecting…", false); });
    source.addEventListener("state", function (ev) {
      var change;
      try { change = JSON.parse(ev.data); } catch (e) { return; }
      onChange(change);
    });
    return source;
  }

  function runPage(page) {
    var runId = page.getAttribute("data-run-id");
    var base = "/runs/" + encodeURIComponent(runId);
    var tree = refresher(base + "/fragment", "run-tree", 250);
    var logs = refresher(base + "/logs-fragment", "run-logs", 600);
    var url = "/api/events?run=" + encodeURIComponent(runId) +
      "&after=" + encodeURIComponent(page.getAttribute("data-after") || "0");
    watch(url, function (change) {
      if (change === null) { tree(); logs(); return; }
      var id = change.task_run_id || change.flow_run_id;
      var shown = update(id, change.new_state);
      var final = FINAL.indexOf(change.new_state) >= 0;
      if (!shown || final || change.old_state === null) { tree(); }
      if (change.task_run_id && final) { logs(); }
    });
  }

  function listPage(page) {
    if (page.getAttribute("data-live") !== "yes") { return; }
    var table = refresher(page.getAttribute("data-fragment-url"), "runs-table", 1000);
    watch("/api/events", function (change) {
      if (change === null || !change.task_run_id) { table(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    var run = document.getElementById("run-page");
    if (run) { runPage(run); }
    var list = document.getElementById("runs-page");
    if (list) { listPage(list); }
  });
})();
