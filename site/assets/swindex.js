/* swindex: sort and filter the models table as you type, and by verdict. No dependencies; the table works without it. */
(function () {
  "use strict";

  function cellValue(row, column, numeric) {
    var cell = row.cells[column];
    var raw = cell ? (cell.getAttribute("data-value") || cell.textContent || "") : "";
    if (numeric) {
      var n = parseFloat(raw);
      return isNaN(n) ? -Infinity : n;
    }
    return raw.toLowerCase();
  }

  function setupTable(table) {
    if (table.getAttribute("data-sw-ready")) return;
    table.setAttribute("data-sw-ready", "1");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var filter = document.getElementById("sw-filter");
    var verdict = document.getElementById("sw-verdict-filter");
    var derived = document.getElementById("sw-derived-filter");
    var count = document.getElementById("sw-count");
    var empty = document.getElementById("sw-empty");
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);

    function applyFilter() {
      var words = (filter ? filter.value : "").toLowerCase().split(/\s+/).filter(Boolean);
      var outcome = verdict ? verdict.value : "";
      var relation = derived ? derived.value : "";
      var shown = 0;
      rows.forEach(function (row) {
        var text = row.getAttribute("data-search") || row.textContent.toLowerCase();
        var match = words.every(function (word) { return text.indexOf(word) !== -1; }) &&
          (!outcome || row.getAttribute("data-outcome") === outcome) &&
          (!relation || (row.getAttribute("data-derived") || "").split(" ").indexOf(relation) !== -1);
        row.hidden = !match;
        if (match) shown += 1;
      });
      if (count) count.textContent = shown + " of " + rows.length + " models";
      if (empty) empty.hidden = shown !== 0;
    }

    function sortBy(column, numeric, descending) {
      var keyed = rows.map(function (row, position) {
        return { row: row, key: cellValue(row, column, numeric), position: position };
      });
      keyed.sort(function (a, b) {
        if (a.key < b.key) return descending ? 1 : -1;
        if (a.key > b.key) return descending ? -1 : 1;
        return a.position - b.position;
      });
      keyed.forEach(function (item) { body.appendChild(item.row); });
      rows = keyed.map(function (item) { return item.row; });
      headers.forEach(function (th, i) {
        th.setAttribute("aria-sort", i === column ? (descending ? "descending" : "ascending") : "none");
      });
    }

    headers.forEach(function (th, column) {
      var kind = th.getAttribute("data-sort");
      if (!kind) return;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sw-sort";
      button.textContent = th.textContent;
      th.textContent = "";
      th.appendChild(button);
      if (!th.hasAttribute("aria-sort")) th.setAttribute("aria-sort", "none");
      button.addEventListener("click", function () {
        var descending = th.getAttribute("aria-sort") === "ascending";
        sortBy(column, kind === "number", descending);
      });
    });

    var query = new URLSearchParams(window.location.search);
    if (verdict) {
      verdict.hidden = false;
      var wanted = (query.get("verdict") || "").replace(/[^a-z_]/g, "");
      if (wanted && verdict.querySelector('option[value="' + wanted + '"]')) verdict.value = wanted;
      verdict.addEventListener("change", applyFilter);
    }
    if (derived) {
      derived.hidden = false;
      var relationWanted = (query.get("derived") || "").replace(/[^a-z]/g, "");
      if (relationWanted && derived.querySelector('option[value="' + relationWanted + '"]')) derived.value = relationWanted;
      derived.addEventListener("change", applyFilter);
    }
    if (filter) {
      filter.addEventListener("input", applyFilter);
      var initial = query.get("q");
      if (initial) filter.value = initial;
    }
    if (filter || verdict || derived) applyFilter();
  }

  function init() {
    var table = document.getElementById("sw-models");
    if (table) setupTable(table);
  }

  if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
    window.document$.subscribe(init);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
