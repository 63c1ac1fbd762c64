// Live counts: while a page shows runs that are executing, ask /api/live once a second and put
// the published counts in every element marked data-live-run (data-field, and data-stage for a
// stage's row); a run page's "finished last" table (#latest) is refilled from
// /api/runs/{run}/latest with textContent only. A running run's page also follows the run: its
// plots, report table, failures by kind, pager and page of trials are replaced by the same
// parts of the page at its own URL (its search, sort, offset and grouping kept), asked at most
// every FOLLOW ms and never sooner than SLOWER times the last answer took, and once more when
// the run ends (ADR 0052). Those parts are the server's rendering, as a reload shows them.
// A runs list marked data-live-watch (a process runs on the store, or is about to) also polls
// while no run it shows is running, and reloads itself once /api/live lists a run it does not
// mark: a run publishes only once it is planned, after the viewer's URL is printed.
(function () {
  "use strict";
  var marked = Array.prototype.slice.call(document.querySelectorAll("[data-live-run]"));
  var watching = document.querySelector("[data-live-watch]") !== null;
  if (!marked.length && !watching) { return; }
  var shown = marked.map(function (element) { return element.getAttribute("data-live-run"); });
  var seenRunning = false;
  var status = document.getElementById("live-status");
  var latest = document.getElementById("latest");
  var PERIOD = 1000;
  var FOLLOW = 2000;
  var SLOWER = 4;
  var nextFollow = 0;

  function cell(row, text, href) {
    var td = document.createElement("td");
    if (href) {
      var link = document.createElement("a");
      link.href = href;
      link.textContent = text;
      td.appendChild(link);
    } else {
      td.textContent = text;
    }
    row.appendChild(td);
  }

  function outcome(trial) {
    if (trial.status === "failed") { return trial.error_kind || "failed"; }
    return Object.keys(trial.scores).map(function (name) {
      return name + " " + trial.scores[name];
    }).join(", ");
  }

  function fillLatest() {
    var run = latest.getAttribute("data-run");
    var base = "/runs/" + encodeURIComponent(run) + "/cases/";
    return fetch("/api/runs/" + encodeURIComponent(run) + "/latest", { cache: "no-store" })
      .then(function (answer) { return answer.json(); })
      .then(function (data) {
        var body = document.createElement("tbody");
        data.rows.forEach(function (trial) {
          var row = document.createElement("tr");
          cell(row, trial.case_id, base + encodeURIComponent(trial.case_id));
          [trial.dataset, trial.model, trial.prompt, String(trial.sample), trial.status,
            outcome(trial)].forEach(function (text) { cell(row, text); });
          body.appendChild(row);
        });
        latest.replaceChild(body, latest.tBodies[0]);
      });
  }

  // The parts of a run page that follow the run.
  var FOLLOWED = ["#plots", "#results", "#failures-by-kind", ".pager", "#trials"];

  function followRun() {
    var started = Date.now();
    return fetch(window.location.pathname + window.location.search, { cache: "no-store" })
      .then(function (answer) {
        if (!answer.ok) { throw new Error("the run page answered " + answer.status); }
        return answer.text();
      })
      .then(function (text) {
        // Parsed inertly (no script runs, nothing loads); each part is the server's own
        // rendering of it, every text of the run escaped there.
        var fresh = new DOMParser().parseFromString(text, "text/html");
        FOLLOWED.forEach(function (selector) {
          var shown = document.querySelector(selector);
          var made = fresh.querySelector(selector);
          if (shown && made) { shown.replaceWith(document.importNode(made, true)); }
        });
        nextFollow = Date.now() + Math.max(FOLLOW, SLOWER * (Date.now() - started));
      });
  }

  function show(data) {
    var runs = {};
    data.runs.forEach(function (run) { runs[run.run_id] = run; });
    var running = 0;
    marked.forEach(function (element) {
      var run = runs[element.getAttribute("data-live-run")];
      if (!run) { return; }
      running += 1;
      var stage = element.getAttribute("data-stage");
      var source = stage ? run.stages[stage] : run;
      var field = element.getAttribute("data-field");
      if (source && field in source) { element.textContent = String(source[field]); }
    });
    return running;
  }

  function poll() {
    fetch("/api/live", { cache: "no-store" })
      .then(function (answer) { return answer.json(); })
      .then(function (data) {
        var unshown = data.runs.some(function (run) { return shown.indexOf(run.run_id) < 0; });
        if (watching && unshown) {
          if (status) { status.textContent = "a run started: loading it"; }
          window.setTimeout(function () { window.location.reload(); }, PERIOD);
          return;
        }
        var running = show(data);
        seenRunning = seenRunning || running > 0;
        var steps = latest ? fillLatest() : Promise.resolve();
        if (latest && (!running || Date.now() >= nextFollow)) { steps = steps.then(followRun); }
        return steps.then(function () {
          if (running) {
            if (status) { status.textContent = "live: updated " + new Date().toLocaleTimeString(); }
            window.setTimeout(poll, PERIOD);
          } else if (watching && !seenRunning) {
            if (status) { status.textContent = "live: waiting for a run to start"; }
            window.setTimeout(poll, PERIOD);
          } else if (status) {
            status.textContent = latest
              ? "finished: the page shows the final report"
              : "finished: reload the page for the final report";
          }
        });
      })
      .catch(function () { window.setTimeout(poll, PERIOD * 5); });
  }
  poll();
}());
