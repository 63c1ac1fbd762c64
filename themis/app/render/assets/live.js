// Live counts: while a page shows runs that are executing, ask /api/live once a second and put
// the published counts in every element marked data-live-run (data-field, and data-stage for a
// stage's row); a run page's "finished last" table (#latest) is refilled from
// /api/runs/{run}/latest. A running run's page also follows the run: its report table
// (#results) and its page of trials (#trials, with the page's own search, sort, offset and
// grouping) are refilled from /api/runs/{run}?<the page's query>, at most every FOLLOW ms and
// never sooner than SLOWER times the last answer took (a large run's report costs more), and
// once more when the run ends. Text is set with textContent only: nothing from a run becomes
// markup.
(function () {
  "use strict";
  var marked = Array.prototype.slice.call(document.querySelectorAll("[data-live-run]"));
  if (!marked.length) { return; }
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

  function refill(table, rows, fill) {
    var body = document.createElement("tbody");
    rows.forEach(function (values) {
      var row = document.createElement("tr");
      fill(row, values);
      body.appendChild(row);
    });
    table.replaceChild(body, table.tBodies[0]);
  }

  function shown(value) {
    if (value === null || value === undefined || value === "") { return "\u2014"; }
    return String(value);
  }

  function general(value) {  // Python's format(value, "g")
    return String(Number(value.toPrecision(6)));
  }

  function trialRow(base, row, trial) {
    cell(row, trial.case_id, base + encodeURIComponent(trial.case_id));
    var scores = Object.keys(trial.scores).map(function (name) {
      return name + " " + general(trial.scores[name]);
    }).join(", ");
    [trial.dataset, trial.model, trial.prompt, trial.sample, trial.status, trial.answer,
      scores, trial.error_kind].forEach(function (value) { cell(row, shown(value)); });
    var td = document.createElement("td");
    var pre = document.createElement("pre");
    pre.className = "response";
    pre.textContent = shown(trial.response);
    td.appendChild(pre);
    row.appendChild(td);
  }

  function followRun() {
    var run = latest.getAttribute("data-run");
    var results = document.getElementById("results");
    var trials = document.getElementById("trials");
    var started = Date.now();
    return fetch("/api/runs/" + encodeURIComponent(run) + window.location.search,
      { cache: "no-store" })
      .then(function (answer) { return answer.json(); })
      .then(function (data) {
        if (results && data.results) {
          var numeric = Array.prototype.map.call(results.tHead.rows[0].cells, function (th) {
            return th.classList.contains("num");
          });
          refill(results, data.results.rows, function (row, cells) {
            cells.forEach(function (text, column) {
              var td = document.createElement("td");
              if (numeric[column]) { td.className = "num"; }
              td.textContent = text;
              row.appendChild(td);
            });
          });
        }
        if (trials && data.trials) {
          var base = "/runs/" + encodeURIComponent(run) + "/cases/";
          refill(trials, data.trials.rows, function (row, trial) { trialRow(base, row, trial); });
          var page = data.trials;
          var count = document.querySelector(".pager .shown");
          if (count) {
            count.textContent = page.total ? (page.offset + 1) + "\u2013" +
              Math.min(page.total, page.offset + page.limit) + " of " + page.total : "none";
          }
        }
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
        var running = show(data);
        var steps = latest ? fillLatest() : Promise.resolve();
        if (latest && (!running || Date.now() >= nextFollow)) { steps = steps.then(followRun); }
        return steps.then(function () {
          if (running) {
            if (status) { status.textContent = "live: updated " + new Date().toLocaleTimeString(); }
            window.setTimeout(poll, PERIOD);
          } else if (status) {
            status.textContent = latest
              ? "finished: the table and trials show the final report; reload for its plots"
              : "finished: reload the page for the final report";
          }
        });
      })
      .catch(function () { window.setTimeout(poll, PERIOD * 5); });
  }
  poll();
}());
