from manim import *


class BracedSegment(Scene):
    def construct(self):
        line = Line(LEFT * 3, RIGHT * 3)
        brace = Brace(line, DOWN)
        label = brace.get_tex(r"\ell = 6")
        self.play(Create(line), run_time=0.6)
        self.play(GrowFromCenter(brace), Write(label), run_time=1)
