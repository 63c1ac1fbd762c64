// Live counts: while a page shows runs that are executing, ask /api/live once a second and put
// the published counts in every element marked data-live-run (data-field, and data-stage for a
// stage's row); a run page's "finished last" table (#latest) is refilled from
// /api/runs/{run}/latest. Text is set with textContent only: nothing from a run becomes markup.
(function () {
  "use strict";
  var marked = Array.prototype.slice.call(document.querySelectorAll("[data-live-run]"));
  if (!marked.length) { return; }
  var status = document.getElementById("live-status");
  var latest = document.getElementById("latest");
  var PERIOD = 1000;

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
        var running = show(data);
        var refill = latest ? fillLatest() : Promise.resolve();
        return refill.then(function () {
          if (running) {
            if (status) { status.textContent = "live: updated " + new Date().toLocaleTimeString(); }
            window.setTimeout(poll, PERIOD);
          } else if (status) {
            status.textContent = "finished: reload the page for the final report";
          }
        });
      })
      .catch(function () { window.setTimeout(poll, PERIOD * 5); });
  }
  poll();
}());
