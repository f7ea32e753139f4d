"""The report as one self-contained HTML file: data, charts and scripts inlined.

jinja2 renders the page with autoescape; the data and chart specs are embedded as JSON
in ``<script type="application/json">`` blocks (``<`` escaped, so no text can close
the block) and the page's script writes every text with ``textContent``, never as HTML.
A Content-Security-Policy meta tag forbids any fetch, frame or form: the page works from
``file://`` with no network. Vega, Vega-Lite and vega-embed come inlined from
vl-convert (cached below ``.evalledger/cache``, as building the bundle takes seconds).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from evalledger.atomic import atomic_write
from evalledger.report.charts import (
    categories_spec,
    config_spec,
    heatmap_spec,
    history_spec,
    leaderboard_spec,
    series_spec,
)

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.report.data import ReportData

__all__ = ["render_html", "vega_bundle"]


def _json_for_script(value: Any) -> str:
    """JSON that can sit inside a ``<script>`` element: no ``<``, ``>`` or ``&`` in it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))  # fmt: skip


def vega_bundle(cache_dir: Path | None) -> str:
    """Vega + vega-lite + vega-embed as one script, from vl-convert (cached by version)."""
    import vl_convert as vlc

    version = f"{vlc.get_vega_version()}-{vlc.get_vega_embed_version()}"
    path = cache_dir / f"vega-bundle-{version}.js" if cache_dir is not None else None
    if path is not None and path.is_file():
        return path.read_text(encoding="utf-8")
    bundle: str = vlc.javascript_bundle()  # type: ignore[call-arg]
    if path is not None:
        atomic_write(path, bundle)  # inside the project: .evalledger/cache
    return bundle


#: A live page (``evalledger view``) asks its server for the ledger's version each
#: second and reloads when it changed; only then may it connect, and only to its origin.
_LIVE_JS = """
(function () {
  let seen = null;
  async function poll() {
    try {
      const r = await fetch("/version", {cache: "no-store"});
      const v = (await r.json()).version;
      if (seen !== null && v !== seen) { location.reload(); return; }
      seen = v;
    } catch (e) { /* the server is restarting or stopped: try again */ }
    setTimeout(poll, 1000);
  }
  poll();
})();
"""


def render_html(
    data: ReportData, cache_dir: Path | None = None, live: bool = False,
    bundle: str | None = None,
) -> str:  # fmt: skip
    """The page for ``data``; ``live`` for a page served by ``evalledger view``."""
    import jinja2

    templates = resources.files("evalledger.report") / "templates"
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    page = env.from_string((templates / "report.html.j2").read_text(encoding="utf-8"))
    specs = {"leaderboard": leaderboard_spec(data.leaderboard, data.metric),
             "heatmap": heatmap_spec(data.cells, data.metric)}  # fmt: skip
    if data.history:
        specs["history"] = history_spec(data.history, data.metric)
    if data.breakdown.get("categories"):
        specs["categories"] = categories_spec(data.breakdown["categories"])
    if data.training.get("series"):
        specs["series"] = series_spec(data.training["series"])
    if data.training.get("config") and data.training.get("metric"):
        specs["config"] = config_spec(data.training["config"], data.training["metric"])
    from markupsafe import Markup

    js = (templates / "report.js").read_text(encoding="utf-8")
    content = data.to_json()
    # The scripts are ours (and vl-convert's); the JSON above cannot hold "</script".
    return page.render(
        data=content,
        data_json=Markup(_json_for_script(content)),
        specs_json=Markup(_json_for_script(specs)),
        vega_js=Markup((bundle or vega_bundle(cache_dir)).replace("</script", "<\\/script")),
        page_js=Markup(js + (_LIVE_JS if live else "")),
        connect=Markup("'self'" if live else "'none'"),
    )
