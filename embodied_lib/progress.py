"""Progress bars for long work: tqdm's notebook widget when live, a plain last line when saved.

A notebook saved after it ran keeps each bar widget's *first* text ("DQN: 0%| | 0/12000"), which reads as if
nothing ran. So when a bar closes in a notebook it also prints one plain line with what it did and how long
it took; in a terminal tqdm's own bar is already that line.
"""
from __future__ import annotations

from tqdm.auto import tqdm as _tqdm_auto


class progress_bar(_tqdm_auto):
    def close(self):
        shows_widget = hasattr(self, "container") and not self.disable   # tqdm.notebook's bar
        leave = self.leave
        super().close()
        if shows_widget and leave:
            d = self.format_dict
            done = f"{d['n']:,}" + (f"/{d['total']:,}" if d["total"] else "")
            print(f"{self.desc or 'done'}: {done} {d['unit']} in {self.format_interval(d['elapsed'])}", flush=True)
