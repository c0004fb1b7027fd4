from manim import *


class BulletList(Scene):
    def construct(self):
        items = VGroup(
            *[Text(f"{i}. {word}", font_size=36) for i, word in enumerate(["Import", "Fork", "Render", "Verify"], 1)]
        ).arrange(DOWN, aligned_edge=LEFT)
        self.play(LaggedStart(*[FadeIn(item, shift=RIGHT) for item in items], lag_ratio=0.3), run_time=1.5)
        self.play(items[2].animate.set_color(YELLOW), run_time=0.5)
