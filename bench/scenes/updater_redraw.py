from manim import *


class ClockHand(Scene):
    def construct(self):
        angle = ValueTracker(PI / 2)
        face = Circle(radius=2, color=WHITE)
        hand = always_redraw(
            lambda: Line(ORIGIN, 1.8 * np.array([np.cos(angle.get_value()), np.sin(angle.get_value()), 0]))
        )
        self.add(face, hand)
        self.play(angle.animate.set_value(PI / 2 - TAU), run_time=2, rate_func=linear)
