"""Read back what a report page says (verdict lines, phase table cells), with the standard library's parser."""

from __future__ import annotations

from html.parser import HTMLParser


class ReportPage(HTMLParser):
    """Collects the verdict (status, lines) and the phase table's ``data-*`` cells of a report page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.status: str | None = None
        self.verdict: list[tuple[str, str]] = []
        self.phase_cells: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
        self.antagonists: list[tuple[str, str, str]] = []  # victim, antagonist, significant
        self.ttft_antagonists: list[tuple[str, str, str]] = []  # the same, on TTFT windows (prefill)
        self.knee_victims: list[str] = []
        self.thermal_nodes: list[tuple[str, str]] = []  # node, status
        self.script_srcs: list[str] = []
        self.plotly_bundles = 0
        self._li_topic: str | None = None
        self._in_text = False
        self._text: list[str] = []
        self._row: tuple[str, str] | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section" and a.get("id") == "verdict":
            self.status = a.get("data-status")
        if tag == "li" and "data-topic" in a:
            self._li_topic = a["data-topic"]
        if tag == "span" and self._li_topic is not None and a.get("class") == "text":
            self._in_text, self._text = True, []
        if tag == "tr" and "data-group" in a and "data-phase" in a:
            self._row = (a["data-group"], a["data-phase"])
            self.phase_cells[self._row] = {}
        if tag == "tr" and "data-antagonist" in a:
            self.antagonists.append((a["data-victim"], a["data-antagonist"], a["data-significant"]))
        if tag == "tr" and "data-ttft-antagonist" in a:
            self.ttft_antagonists.append((a["data-ttft-victim"], a["data-ttft-antagonist"], a["data-ttft-significant"]))
        if tag == "p" and a.get("class") == "knee":
            self.knee_victims.append(a["data-victim"])
        if tag == "tr" and "data-node" in a:
            self.thermal_nodes.append((a["data-node"], a["data-status"]))
        if tag == "td" and self._row is not None and "data-metric" in a:
            self.phase_cells[self._row][a["data-metric"]] = a
        if tag == "script":
            self._in_script = True
            if "src" in a:
                self.script_srcs.append(a["src"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._in_text:
            self.verdict.append((self._li_topic or "", "".join(self._text)))
            self._in_text = False
        if tag == "li":
            self._li_topic = None
        if tag == "tr":
            self._row = None
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_text:
            self._text.append(data)
        if self._in_script and "plotly.js v" in data[:2000]:
            self.plotly_bundles += 1


def read_page(html: str) -> ReportPage:
    page = ReportPage()
    page.feed(html)
    return page
