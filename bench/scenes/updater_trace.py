from manim import *


class TracedOrbit(Scene):
    def construct(self):
        center = Dot(color=YELLOW)
        planet = Dot(color=BLUE).shift(RIGHT * 2)
        trace = TracedPath(planet.get_center, stroke_color=BLUE, stroke_width=3)
        self.add(center, planet, trace)
        self.play(Rotate(planet, angle=TAU, about_point=ORIGIN), run_time=2.5, rate_func=linear)
