// The console's charts (templates/console/charts.html): each <figure class="chart"> draws the
// metrics it names from the section's JSON (apps/metrics/services.py series) with uPlot, which
// Spool serves itself. Changing the range fetches again; the page's URL keeps the choice.
(function () {
  "use strict";

  const COLORS = ["#0f6cbd", "#c4314b", "#8a6d00", "#107c10", "#5c2e91"];
  // Whole steps for counts: no "0.5 calls" on an axis.
  const STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5,
                 1e6, 2e6, 5e6, 1e7];

  // "API requests: refused (4xx)" reads "refused (4xx)" under its chart's title.
  function shortLabel(label) {
    const colon = label.indexOf(": ");
    return colon < 0 ? label : label.slice(colon + 2);
  }

  function size(plot) {
    const width = Math.max(plot.clientWidth, 200);
    return { width: width, height: Math.round(Math.min(220, Math.max(140, width * 0.4))) };
  }

  function draw(figure, data) {
    const names = figure.dataset.metrics.split(",");
    const plot = figure.querySelector(".chart-plot");
    plot.textContent = "";
    const series = [{}].concat(names.map(function (name, index) {
      return { label: shortLabel(data.labels[name] || name), stroke: COLORS[index % COLORS.length],
               width: 1.5, points: { show: false } };
    }));
    const values = [data.times].concat(names.map(function (name) { return data.metrics[name]; }));
    const total = names.map(function (name) { return data.totals[name]; });
    figure.querySelector(".chart-total").textContent = names.length === 1 ? "· " + total[0] : "";
    const options = Object.assign(size(plot), {
      series: series,
      scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
      axes: [{ stroke: "currentColor", grid: { stroke: "rgba(128,128,128,.15)" } },
             { stroke: "currentColor", grid: { stroke: "rgba(128,128,128,.15)" }, size: 48,
               incrs: STEPS }],
      legend: { live: true },
    });
    const chart = new window.uPlot(options, values, plot);
    figure._chart = chart;
  }

  function load(section) {
    const status = section.querySelector(".chart-status");
    const range = section.querySelector("select[name=range]").value;
    status.textContent = "Loading…";
    fetch(section.dataset.url + "?range=" + encodeURIComponent(range), { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        status.textContent = "";
        section.querySelectorAll("figure.chart").forEach(function (figure) {
          if (figure._chart) figure._chart.destroy();
          draw(figure, data);
        });
      })
      .catch(function (error) { status.textContent = "The charts could not be loaded (" + error.message + ")."; });
  }

  function start() {
    document.querySelectorAll("section.charts").forEach(function (section) {
      const select = section.querySelector("select[name=range]");
      select.addEventListener("change", function () {
        const url = new URL(window.location.href);
        url.searchParams.set("range", select.value);
        window.history.replaceState(null, "", url);
        load(section);
      });
      let resizing = null;
      window.addEventListener("resize", function () {
        clearTimeout(resizing);
        resizing = setTimeout(function () {
          section.querySelectorAll("figure.chart").forEach(function (figure) {
            if (figure._chart) figure._chart.setSize(size(figure.querySelector(".chart-plot")));
          });
        }, 150);
      });
      load(section);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
