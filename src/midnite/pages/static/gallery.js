// The gallery: sort the tiles by unit or by activation; show the alpha maps on request.
(function () {
  var grid = document.getElementById("grid");
  var buttons = document.querySelectorAll(".controls button[data-sort]");
  var descending = true;
  function num(tile, key) {
    var v = parseFloat(tile.getAttribute(key));
    return isNaN(v) ? null : v;
  }
  function sortTiles(how) {
    var tiles = Array.prototype.slice.call(grid.querySelectorAll(".tile"));
    tiles.sort(function (a, b) {
      var oa = num(a, "data-order"), ob = num(b, "data-order");
      if (how === "activation") {
        var va = num(a, "data-activation"), vb = num(b, "data-activation");
        if (va === null && vb !== null) return 1;
        if (vb === null && va !== null) return -1;
        if (va !== vb) return descending ? vb - va : va - vb;
      }
      return oa - ob;
    });
    tiles.forEach(function (t) { grid.appendChild(t); });
    grid.setAttribute("data-sorted", how + (how === "activation" ?
      (descending ? "-desc" : "-asc") : ""));
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-sort") === how ? "true" : "false");
    });
  }
  var alpha = document.getElementById("show-alpha");
  if (alpha) {
    alpha.addEventListener("click", function () {
      var on = document.body.classList.toggle("show-alpha");
      alpha.setAttribute("aria-pressed", on ? "true" : "false");
    });
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      var how = b.getAttribute("data-sort");
      if (how === "activation") {
        if (grid.getAttribute("data-sorted").indexOf("activation") === 0) {
          descending = !descending;
        } else {
          descending = true;
        }
        b.textContent = "activation " + (descending ? "\u2193" : "\u2191");
      }
      sortTiles(how);
    });
  });
})();
