from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        formula = MathTex(r"e^{i\pi} + 1 = 0")
        self.play(Write(formula), run_time=1)
        self.play(Indicate(formula), run_time=0.5)
