from manim import *


class TitleCard(Scene):
    def construct(self):
        title = Text("Warm workers", font_size=72)
        subtitle = Text("one import, many renders", font_size=32).next_to(title, DOWN)
        self.play(Write(title), run_time=1)
        self.play(FadeIn(subtitle, shift=UP * 0.3), run_time=0.5)
        self.wait(0.5)
