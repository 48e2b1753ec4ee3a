// A layer page: sort the unit tiles by unit number, activation reached or trust score.
(function () {
  var grid = document.getElementById("grid");
  var buttons = document.querySelectorAll(".controls button[data-sort]");
  var descending = true;
  function num(tile, key) {
    var v = parseFloat(tile.getAttribute("data-" + key));
    return isNaN(v) ? null : v;
  }
  function sortTiles(how) {
    var tiles = Array.prototype.slice.call(grid.querySelectorAll(".tile"));
    tiles.sort(function (a, b) {
      if (how !== "unit") {
        var va = num(a, how), vb = num(b, how);
        if (va === null && vb !== null) return 1;
        if (vb === null && va !== null) return -1;
        if (va !== vb) return descending ? vb - va : va - vb;
      }
      return num(a, "unit") - num(b, "unit");
    });
    tiles.forEach(function (t) { grid.appendChild(t); });
    grid.setAttribute("data-sorted", how + (how === "unit" ? "" : descending ? "-desc" : "-asc"));
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-sort") === how ? "true" : "false");
    });
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      var how = b.getAttribute("data-sort");
      if (how !== "unit") {
        descending = grid.getAttribute("data-sorted").indexOf(how) === 0 ? !descending : true;
        b.textContent = how + " " + (descending ? "\u2193" : "\u2191");
      }
      sortTiles(how);
    });
  });
})();
