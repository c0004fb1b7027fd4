from manim import *


class PointerOnNumberLine(Scene):
    def construct(self):
        line = NumberLine(x_range=[0, 10, 1], length=10, include_numbers=True)
        pointer = Triangle(fill_opacity=1, color=RED).scale(0.15).rotate(PI).next_to(line.n2p(1), UP)
        self.play(Create(line), FadeIn(pointer), run_time=1)
        self.play(pointer.animate.next_to(line.n2p(8), UP), run_time=1.5)
