"""The report as one self-contained HTML file: inline CSS and inline SVG charts, no
script and no network request, a single column that reads on a phone."""

from __future__ import annotations

from jinja2 import Environment

from warehouse.report.model import Report, fmt

TEMPLATE = """<!doctype html>
<html lang="{{ r.lang }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ r.title }} · {{ r.period }}</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#1d2733;background:#f4f6f8}
main{max-width:960px;margin:0 auto;padding:12px}
header h1{font-size:1.4em;margin:.4em 0 .1em}header p{margin:0 0 1em;color:#5b6773}
nav{display:flex;flex-wrap:wrap;gap:6px;margin-bottom:12px}
nav a{background:#fff;border:1px solid #d5dbe1;border-radius:14px;padding:2px 10px;
 color:#2c5d8a;text-decoration:none;font-size:.85em}
section{background:#fff;border:1px solid #dde3e8;border-radius:8px;padding:12px 14px;
 margin-bottom:14px}
section h2{font-size:1.15em;margin:0 0 .3em}
p.reading{margin:0 0 .6em;color:#33414e}
section.empty p.reading{color:#8a96a3;font-style:italic}
.chart{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.4em 0}
.chart svg{display:block;width:100%;height:auto}
ul.legend{display:flex;flex-wrap:wrap;gap:2px 14px;list-style:none;margin:.4em 0 0;padding:0;
 font-size:.8em;color:#33414e}
ul.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.82em;margin:.4em 0;min-width:60%}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border-bottom:1px solid #e6eaee;padding:3px 8px;white-space:nowrap}
th{background:#f0f3f6;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
td.text{white-space:normal;min-width:16em}
</style></head><body><main>
<header><h1>{{ r.title }}</h1><p>{{ r.subtitle }}</p></header>
<nav>{% for s in r.sections %}<a href="#{{ s.id }}">{{ s.title }}</a>{% endfor %}</nav>
{% for s in r.sections %}
<section id="{{ s.id }}" class="{{ 'empty' if s.empty else 'filled' }}">
<h2>{{ s.title }}</h2><p class="reading">{{ s.reading }}</p>
{% if s.chart and s.chart.legend %}<ul class="legend">{% for k in s.chart.legend %}
<li{{ ' style="font-weight:600"' | safe if k.bold }}><i style="background:{{ k.colour }}"></i>
{{- k.label }}</li>{% endfor %}</ul>{% endif %}
{% if s.chart %}<div class="chart" role="img" aria-label="{{ s.chart_alt }}"
 style="max-width:{{ s.chart.width }}px"><div style="min-width:{{ [s.chart.width, 540] | min }}px">
{{- s.chart.svg | safe }}</div></div>{% endif %}
{% for t in s.tables %}<div class="scroll"><table><caption>{{ t.caption }}</caption>
<thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead><tbody>
{% for row in t.rows %}<tr>{% for v in row %}{% set k = t.kinds[loop.index0] %}
<td class="{{ 'n' if k != 'text' else ('text' if (v|string)|length > 40 else '') }}">
{{- cell(v, k) }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>{% endfor %}
</section>
{% endfor %}
</main></body></html>
"""

# `safe` on a chart: vl-convert writes the SVG and escapes every text it draws (a test
# plants markup in a business name and finds it inert).
_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_TEMPLATE = _ENV.from_string(TEMPLATE)


def render(report: Report) -> str:
    return _TEMPLATE.render(
        r=report,
        cell=lambda value, kind: fmt(value, kind, report.lang, report.currency),
    )
