"""A LINE rich menu per program: `madoguchi channels line-richmenu --program ID`.

The menu's image is drawn here from the program's `rich_menu` labels with a
Japanese font (Debian's fonts-ipafont-gothic or fonts-noto-cjk, or the file
named by `MADOGUCHI_LINE__RICH_MENU_FONT`), so the secretariat never edits pictures: change a
label in the YAML and run the command again. Through line-bot-sdk's rich menu
API the command creates the new menu, uploads the image, makes it the default
for every user of that program's LINE account and then deletes the menus it
made before (found by name, `madoguchi:<program id>`), so users never see a
menu without an image.

Tapping an item sends its text as the user's message, opens the program's
LIFF hearing form (`liff: true`), or opens a URL. Personal data is never asked
for in LINE messages: the hearing form is our own page inside LINE.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linebot.v3.messaging import (
    ApiClient,
    Configuration,
    MessageAction,
    MessagingApi,
    RichMenuArea,
    RichMenuBounds,
    RichMenuRequest,
    RichMenuSize,
    URIAction,
)

from bot.programs import Program, ProgramCatalog, RichMenuItem
from bot.settings import env_name
from bot.text import normalize
from handlers.hearing.chat import HearingHandler

WIDTH = 2500
ROW_HEIGHT = 843
NAME_PREFIX = "madoguchi:"
#: Where Debian's Japanese fonts are (fonts-ipafont-gothic, fonts-noto-cjk, fonts-ipaexfont-gothic).
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)
FONT_HINT = ("日本語フォントが見つかりません。Debian/Ubuntu では `apt-get install fonts-ipafont-gothic`"
             "（または fonts-noto-cjk）で入れるか、MADOGUCHI_LINE__RICH_MENU_FONT にフォントファイル"
             "（.ttf/.otf/.ttc）のパスを設定してください。")
DEFAULT_ITEMS = (RichMenuItem(label="よくある質問", text="ヘルプ"), RichMenuItem(label="担当者に相談", text="担当者と話したい"))


class RichMenuError(RuntimeError):
    """Something the operator must fix (no font, no LINE credentials, no LIFF id); the message says what."""


def find_font(configured: Path | None = None) -> Path:
    """The configured font file (the setting `line.rich_menu_font`), else the first Debian Japanese font found."""
    if configured is not None:
        if not Path(configured).is_file():
            raise RichMenuError(f"{env_name(('line', 'rich_menu_font'))}={configured} のファイルがありません。")
        return Path(configured)
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise RichMenuError(FONT_HINT)


@dataclass(frozen=True)
class Layout:
    rows: int
    columns: int

    @property
    def height(self) -> int:
        return ROW_HEIGHT * self.rows

    def cell(self, index: int) -> tuple[int, int, int, int]:
        """(x, y, width, height) of item `index`, row by row; the last column takes the remainder."""
        row, column = divmod(index, self.columns)
        width = WIDTH // self.columns
        x = column * width
        if column == self.columns - 1:
            width = WIDTH - x
        return x, row * ROW_HEIGHT, width, ROW_HEIGHT


def layout_for(count: int) -> Layout:
    """1-3 items in one row (2500x843), 4 as 2x2, 5-6 as 2x3 (2500x1686): LINE's two standard sizes."""
    if not 1 <= count <= 6:
        raise RichMenuError("リッチメニューの項目は 1〜6 個にしてください")
    if count <= 3:
        return Layout(1, count)
    return Layout(2, 2 if count == 4 else 3)


def menu_items(program: Program) -> list[RichMenuItem]:
    """The program's items; in a program without a hearing form, none that opens or starts the hearing sheet."""
    items = list(program.rich_menu) or list(DEFAULT_ITEMS)
    if program.hearing_form:
        return items
    hearing = HearingHandler()
    kept = [item for item in items if not (item.liff or (item.text and hearing.triggered_by(normalize(item.text))))]
    return kept or list(DEFAULT_ITEMS)


def render_image(items: list[RichMenuItem], font_path: Path | None = None) -> bytes:
    """The menu picture as PNG: one tile per item with its label centred, in the program's grid."""
    from PIL import Image, ImageDraw, ImageFont  # only to draw a rich menu image

    font_file = find_font(font_path)
    layout = layout_for(len(items))
    image = Image.new("RGB", (WIDTH, layout.height), "#0b6e4f")
    draw = ImageDraw.Draw(image)
    for index, item in enumerate(items):
        x, y, width, height = layout.cell(index)
        draw.rectangle((x + 8, y + 8, x + width - 8, y + height - 8), fill="#ffffff" if index % 2 == 0 else "#e6f4ee")
        size = 120
        font = ImageFont.truetype(str(font_file), size)
        while draw.textlength(item.label, font=font) > width - 80 and size > 40:
            size -= 8
            font = ImageFont.truetype(str(font_file), size)
        box = draw.textbbox((0, 0), item.label, font=font)
        text_w, text_h = box[2] - box[0], box[3] - box[1]
        draw.text((x + (width - text_w) / 2 - box[0], y + (height - text_h) / 2 - box[1]), item.label,
                  font=font, fill="#0b3d2e")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def liff_url(program: Program) -> str:
    if not (program.line and program.line.liff_id):
        raise RichMenuError(f"プログラム {program.id} に line.liff_id がありません（LIFF アプリを作成して設定してください）")
    return f"https://liff.line.me/{program.line.liff_id}"


def menu_request(program: Program, items: list[RichMenuItem]) -> RichMenuRequest:
    layout = layout_for(len(items))
    areas = []
    for index, item in enumerate(items):
        x, y, width, height = layout.cell(index)
        if item.liff:
            action: Any = URIAction(label=item.label, uri=liff_url(program))
        elif item.uri:
            action = URIAction(label=item.label, uri=item.uri)
        else:
            action = MessageAction(label=item.label, text=item.text or item.label)
        areas.append(RichMenuArea(bounds=RichMenuBounds(x=x, y=y, width=width, height=height), action=action))
    return RichMenuRequest(size=RichMenuSize(width=WIDTH, height=layout.height), selected=True,
                           name=f"{NAME_PREFIX}{program.id}"[:300], chatBarText="メニュー", areas=areas)


@dataclass
class RichMenuResult:
    rich_menu_id: str
    replaced: list[str]
    image_bytes: int


def publish(catalog: ProgramCatalog, program: Program, *, api_url: str, data_api_url: str,
            font_path: Path | None = None) -> RichMenuResult:
    """Create the program's menu, upload its image, make it the default, delete the previous ones."""
    credentials = catalog.line_credentials(program)
    if credentials is None:
        raise RichMenuError(f"プログラム {program.id} の LINE の資格情報がありません"
                            "（line.channel_secret_env / line.access_token_env の環境変数を設定してください）")
    items = menu_items(program)
    request = menu_request(program, items)  # checks the LIFF id before anything is sent
    image = render_image(items, font_path)
    configuration = Configuration(host=api_url, access_token=credentials[1])
    with ApiClient(configuration) as client:
        api = MessagingApi(client)
        name = f"{NAME_PREFIX}{program.id}"
        earlier = [menu.rich_menu_id for menu in (api.get_rich_menu_list().richmenus or []) if menu.name == name]
        created = api.create_rich_menu(request).rich_menu_id
        # MessagingApiBlob.set_rich_menu_image pins its host to api-data.line.me; the same SDK call through
        # the client with the configured data host lets a proxy (or the test's fake LINE API) receive it.
        client.call_api("/v2/bot/richmenu/{richMenuId}/content", "POST", {"richMenuId": created}, [],
                        {"Content-Type": "image/png"}, body=image, auth_settings=["Bearer"],
                        response_types_map={}, _host=data_api_url.rstrip("/"))
        api.set_default_rich_menu(created)
        for old in earlier:
            api.delete_rich_menu(old)
    return RichMenuResult(created, earlier, len(image))
