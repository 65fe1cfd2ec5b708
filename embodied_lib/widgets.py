"""What the notebooks show of an episode and of the robot's reading of commands.

The rollout viewer is plain images (a PNG frame strip and an animated GIF), so a saved notebook shows it without a
kernel, on GitHub too. The command box is an ipywidget (it needs a kernel to answer); its state is saved with the
notebook (nbclient stores widget state), and it also prints a plain-text line for viewers that cannot show widgets.
"""
from __future__ import annotations

import html
import io

import numpy as np


def _captioned(frame: np.ndarray, caption: str, size: int):
    """The frame scaled to ``size`` pixels wide, under a white band with ``caption``."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.asarray(frame, dtype=np.uint8)).convert("RGB")
    if max(image.size) > size:
        image = image.resize((size, size * image.size[1] // image.size[0]), Image.Resampling.LANCZOS)
    out = Image.new("RGB", (image.width, image.height + 16), "white")
    ImageDraw.Draw(out).text((3, 2), caption, fill="black")
    out.paste(image, (0, 16))
    return out


def _encoded(image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, optimize=True, **options)
    return buffer.getvalue()


def rollout_viewer(frames, titles, size: int = 200, strip_frames: int = 8, max_frames: int = 40):
    """One episode as images that need no kernel: a strip of ``strip_frames`` evenly spaced frames (PNG, with
    their step numbers) and the whole episode as an animated GIF (``max_frames`` frames at most), both plain image
    outputs, so a saved notebook shows them in JupyterLab, nbviewer and on GitHub alike; the last frame's title
    is printed below."""
    from IPython.display import Image as ShowImage, display
    from PIL import Image

    def spaced(n):   # n frame indices, evenly spaced, first and last included
        n = min(n, len(frames))
        return sorted({round(i * (len(frames) - 1) / max(1, n - 1)) for i in range(n)})
    shown = {i: _captioned(frames[i], f"step {i}", size) for i in set(spaced(strip_frames)) | set(spaced(max_frames))}
    strip, animation = [shown[i] for i in spaced(strip_frames)], [shown[i] for i in spaced(max_frames)]

    gap = 4
    sheet = Image.new("RGB", (sum(f.width for f in strip) + gap * (len(strip) - 1), strip[0].height), "white")
    for k, f in enumerate(strip):
        sheet.paste(f, (k * (f.width + gap), 0))
    display(ShowImage(data=_encoded(sheet, "PNG"), format="png"))
    display(ShowImage(data=_encoded(animation[0], "GIF", save_all=True, append_images=animation[1:], duration=150,
                                    loop=0), format="gif"))
    print(f"{len(frames)} frames ({len(strip)} in the strip, {len(animation)} in the animation); "
          f"last: {titles[-1]}")


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
