from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        tracker = ValueTracker(0)
        dot = Dot().add_updater(lambda d: d.move_to([tracker.get_value(), 0, 0]))
        label = always_redraw(lambda: Text(f"{tracker.get_value():.1f}", font_size=24).next_to(dot, UP))
        self.add(dot, label)
        self.play(tracker.animate.set_value(3), run_time=1.5)
