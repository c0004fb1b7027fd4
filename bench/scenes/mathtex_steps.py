from manim import *


class SolveLinear(Scene):
    def construct(self):
        steps = [MathTex(r"2x + 3 = 7"), MathTex(r"2x = 4"), MathTex(r"x = 2")]
        self.play(Write(steps[0]), run_time=0.8)
        for before, after in zip(steps, steps[1:], strict=False):
            self.play(TransformMatchingTex(before, after), run_time=0.7)
