"""Interactive parts of the notebooks (ipywidgets): the command box and the rollout viewer.

Both work live in JupyterLab and read well in a saved notebook: their state is saved with it (nbclient stores
widget state), and each also prints a plain-text line for viewers that cannot show widgets.
"""
from __future__ import annotations

import html
import io

import numpy as np


def _png(frame: np.ndarray, size: int) -> bytes:
    from PIL import Image

    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    if max(image.size) > size:
        image = image.resize((size, size * image.size[1] // image.size[0]), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def rollout_viewer(frames, titles, size: int = 240, max_frames: int = 60):
    """A slider (with play) over the frames of one episode, the frame's title above it."""
    import ipywidgets as widgets

    step = max(1, -(-len(frames) // max_frames))        # keep at most max_frames (saved notebooks stay small)
    keep = list(range(0, len(frames), step))
    if keep[-1] != len(frames) - 1:
        keep.append(len(frames) - 1)
    images = [_png(frames[i], size) for i in keep]
    image = widgets.Image(value=images[0], format="png", width=size, height=size)
    title = widgets.HTML(f"<b>{html.escape(titles[keep[0]])}</b>")
    slider = widgets.IntSlider(value=0, min=0, max=len(keep) - 1, description="frame", continuous_update=True,
                               layout=widgets.Layout(width=f"{max(size, 320)}px"))
    play = widgets.Play(value=0, min=0, max=len(keep) - 1, interval=150, description="play")
    widgets.jslink((play, "value"), (slider, "value"))

    def show(change):
        image.value = images[change["new"]]
        title.value = f"<b>{html.escape(titles[keep[change['new']]])}</b>"
    slider.observe(show, names="value")
    print(f"rollout viewer: {len(keep)} of {len(frames)} frames; last: {titles[-1]}")
    return widgets.VBox([title, image, widgets.HBox([play, slider])])


class CommandBox:
    """A text field the robot's interpreter reads: Enter (or leaving the field) submits; the newest decision is
    shown first with its action, parameters, confidence and reason. ``widget`` is what to display."""

    def __init__(self, interpreter, placeholder: str = "type a command, then Enter", history: int = 12):
        import ipywidgets as widgets

        self.interpreter, self.history, self.rows = interpreter, history, []
        # continuous_update=False: the value reaches Python on Enter or blur, whole, so a busy kernel can never
        # act on a half-typed text; observe replaces the deprecated on_submit.
        self.text = widgets.Text(placeholder=placeholder, description="Command:", continuous_update=False,
                                 layout=widgets.Layout(width="70%"))
        self.results = widgets.HTML(self._render())
        self.text.observe(self._on_value, names="value")
        self.widget = widgets.VBox([self.text, self.results])

    def _on_value(self, change):
        if change["new"].strip():
            self.submit(change["new"])

    def submit(self, text: str) -> dict:
        """Decide on ``text`` and put the decision at the top; returns the row shown."""
        d = self.interpreter.act(text)
        command = d.action or {"action": d.details.get("best_guess"), "params": d.details.get("params", {})}
        row = {"text": text, "decision": "REFUSE" if d.refused else "ACCEPT", "action": command["action"],
               "params": command["params"], "confidence": round(float(d.confidence or 0.0), 3),
               "reason": "; ".join([d.reason or ""] + d.details.get("warnings", [])).strip("; ")}
        self.rows.insert(0, row)
        del self.rows[self.history:]
        self.results.value = self._render()
        return row

    def _render(self) -> str:
        if not self.rows:
            return "<i>No command yet.</i>"
        cells = "".join(
            f'<tr class="embodied-decision" data-decision="{r["decision"]}">'
            f"<td>{html.escape(r['text'] if len(r['text']) <= 80 else r['text'][:79] + '…')}</td><td><b>{r['decision']}</b></td><td>{html.escape(str(r['action']))}</td>"
            f"<td>{html.escape(str(r['params']))}</td><td>{r['confidence']:.2f}</td><td>{html.escape(r['reason'])}</td></tr>"
            for r in self.rows)
        return ("<table><tr><th>command (newest first)</th><th>decision</th><th>action</th><th>parameters</th>"
                f"<th>confidence</th><th>reason</th></tr>{cells}</table>")
