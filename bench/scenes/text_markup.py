from manim import *


class MarkupBanner(Scene):
    def construct(self):
        banner = MarkupText('Render <span fgcolor="#58C4DD">fast</span>, stay <b>safe</b>', font_size=44)
        box = SurroundingRectangle(banner, buff=0.3, color=BLUE)
        self.play(FadeIn(banner), Create(box), run_time=1)
        self.play(banner.animate.scale(1.2), box.animate.scale(1.2), run_time=1)
