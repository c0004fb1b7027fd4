from manim import *


class GaussSum(Scene):
    def construct(self):
        lhs = MathTex(r"\sum_{k=1}^{n} k")
        rhs = MathTex(r"= \frac{n(n+1)}{2}").next_to(lhs, RIGHT)
        group = VGroup(lhs, rhs).move_to(ORIGIN)
        self.play(FadeIn(lhs), run_time=0.5)
        self.play(Write(rhs), run_time=1)
        self.play(Circumscribe(group), run_time=1)
