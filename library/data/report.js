// lutgen library report: sort the table by a column (numbers numerically) and filter its rows.
// Plain DOM, no libraries, no network: it works from file://.
"use strict";
(function () {
  const table = document.getElementById("library");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const headers = Array.from(table.tHead.rows[0].cells);
  const count = document.getElementById("count");
  const field = (id) => document.getElementById(id);
  const search = field("search");
  const selects = { kind: field("f-kind"), origin: field("f-origin"), family: field("f-family") };
  const limits = { mae: field("f-max-mae"), power: field("f-max-power") };

  function compare(x, y) {
    if (x === "" || y === "") return (x === "") - (y === "");  // missing values last
    const nx = Number(x), ny = Number(y);
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) return nx - ny;
    return x.localeCompare(y, undefined, { numeric: true });
  }

  headers.forEach((th, col) => th.addEventListener("click", () => {
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    headers.forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const sorted = rows.slice().sort((a, b) => {
      const x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      if (x === "" || y === "") return compare(x, y);  // missing values stay last either way
      return ascending ? compare(x, y) : compare(y, x);
    });
    sorted.forEach((row) => body.appendChild(row));
  }));

  function apply() {
    const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of rows) {
      let visible = words.every((word) => row.dataset.text.includes(word));
      for (const [key, select] of Object.entries(selects)) {
        visible = visible && (select.value === "" || row.dataset[key] === select.value);
      }
      for (const [key, input] of Object.entries(limits)) {
        const limit = input.value === "" ? NaN : Number(input.value);
        const value = row.dataset[key] === "" ? NaN : Number(row.dataset[key]);
        if (!Number.isNaN(limit)) visible = visible && !Number.isNaN(value) && value <= limit;
      }
      row.hidden = !visible;
      if (visible) shown += 1;
    }
    count.textContent = `${shown} of ${rows.length} multipliers shown`;
  }

  [search, ...Object.values(selects), ...Object.values(limits)].forEach((control) => {
    control.addEventListener("input", apply);
    control.addEventListener("change", apply);
  });
  apply();
})();
