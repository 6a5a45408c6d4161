"""The dark theme: one palette, one style sheet, colours named for what they mean."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

COLORS = {
    "window": "#1c1d21",  # behind everything
    "panel": "#24262b",  # docks and bars
    "raised": "#2d3036",  # inputs, list rows on hover
    "canvas": "#121316",  # behind the photo: darker, so the photo reads first
    "border": "#3a3d45",
    "text": "#e8e9ec",
    "muted": "#9a9ea8",
    "accent": "#5b8def",  # selection, primary buttons, progress
    "accent_hover": "#7aa3f5",
    "ok": "#3fbf7f",
    "warning": "#e8a33d",
    "error": "#f2555a",
}

STYLE = """
QMainWindow, QDialog {{ background: {window}; }}
QWidget {{ color: {text}; font-size: 13px; }}
QToolTip {{ background: {raised}; color: {text}; border: 1px solid {border}; padding: 4px; }}
QDockWidget {{ titlebar-close-icon: none; }}
QDockWidget::title {{
    background: {panel}; padding: 7px 10px;
    font-size: 11px; color: {muted}; border-bottom: 1px solid {border};
}}
QDockWidget > QWidget {{ background: {panel}; }}
QMenuBar {{ background: {window}; padding: 2px; }}
QMenuBar::item {{ padding: 5px 10px; border-radius: 4px; }}
QMenuBar::item:selected {{ background: {raised}; }}
QMenu {{ background: {panel}; border: 1px solid {border}; padding: 4px; }}
QMenu::item {{ padding: 6px 28px 6px 20px; border-radius: 4px; }}
QMenu::item:selected {{ background: {accent}; color: white; }}
QMenu::item:disabled {{ color: {muted}; }}
QMenu::separator {{ height: 1px; background: {border}; margin: 4px 8px; }}
QToolBar {{ background: {panel}; border: none; border-bottom: 1px solid {border};
    spacing: 4px; padding: 4px 6px; }}
QToolBar#tools {{ border-bottom: none; border-right: 1px solid {border}; padding: 6px 4px; }}
QToolBar::separator {{ background: {border}; width: 1px; height: 1px; margin: 4px 6px; }}
QToolButton {{ background: transparent; border: 1px solid transparent; border-radius: 6px;
    padding: 5px 8px; }}
QToolButton:hover {{ background: {raised}; border-color: {border}; }}
QToolButton:checked {{ background: {accent}; color: white; }}
QToolButton:disabled {{ color: {muted}; }}
QPushButton {{ background: {raised}; border: 1px solid {border}; border-radius: 6px;
    padding: 6px 14px; }}
QPushButton:hover {{ border-color: {accent}; }}
QPushButton:disabled {{ color: {muted}; border-color: {raised}; }}
QPushButton[primary="true"] {{ background: {accent}; border-color: {accent}; color: white;
    font-weight: 600; }}
QPushButton[primary="true"]:hover {{ background: {accent_hover}; }}
QPushButton[primary="true"]:disabled {{ background: {raised}; border-color: {raised};
    color: {muted}; }}
QPushButton[flat="true"] {{ background: transparent; border: none; padding: 4px 8px; }}
QLineEdit, QPlainTextEdit, QTextEdit, QSpinBox, QDoubleSpinBox, QComboBox {{
    background: {window}; border: 1px solid {border}; border-radius: 6px; padding: 5px 8px;
    selection-background-color: {accent}; }}
QLineEdit:focus, QPlainTextEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus,
QComboBox:focus {{ border-color: {accent}; }}
QLineEdit:disabled {{ color: {muted}; }}
QComboBox QAbstractItemView {{ background: {panel}; border: 1px solid {border};
    selection-background-color: {accent}; }}
QListWidget, QListView, QTreeView, QUndoView {{ background: {panel}; border: none;
    outline: none; }}
QListView::item, QListWidget::item {{ padding: 2px; border-radius: 6px; }}
QListView::item:hover, QListWidget::item:hover {{ background: {raised}; }}
QListView::item:selected, QListWidget::item:selected {{ background: #34415e; color: {text}; }}
QProgressBar {{ background: {window}; border: none; border-radius: 3px; height: 6px;
    text-align: center; color: transparent; }}
QProgressBar::chunk {{ background: {accent}; border-radius: 3px; }}
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 0; }}
QScrollBar:horizontal {{ background: transparent; height: 10px; margin: 0; }}
QScrollBar::handle {{ background: {border}; border-radius: 5px; min-height: 24px;
    min-width: 24px; }}
QScrollBar::handle:hover {{ background: {muted}; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: transparent; }}
QStatusBar {{ background: {panel}; border-top: 1px solid {border}; color: {muted}; }}
QStatusBar QLabel {{ color: {muted}; padding: 0 6px; }}
QSlider::groove:horizontal {{ height: 4px; background: {border}; border-radius: 2px; }}
QSlider::sub-page:horizontal {{ background: {accent}; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: {text}; width: 14px; height: 14px;
    margin: -5px 0; border-radius: 7px; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{ background: transparent; color: {muted}; padding: 7px 12px;
    border-bottom: 2px solid transparent; }}
QTabBar::tab:selected {{ color: {text}; border-bottom-color: {accent}; }}
QLabel[role="heading"] {{ font-size: 11px; font-weight: 600; color: {muted}; }}
QLabel[role="hint"] {{ color: {muted}; font-size: 12px; }}
QLabel[role="ready"] {{ color: {ok}; font-size: 12px; }}
QLabel[role="problem"] {{ color: {warning}; font-size: 12px; }}
QFrame#messageBar[level="error"] {{ background: #4a2326; border: 1px solid {error};
    border-radius: 8px; }}
QFrame#messageBar[level="info"] {{ background: #21324f; border: 1px solid {accent};
    border-radius: 8px; }}
QFrame#messageBar[level="ok"] {{ background: #1f3b2e; border: 1px solid {ok};
    border-radius: 8px; }}
QFrame#card {{ background: {raised}; border: 1px solid {border}; border-radius: 8px; }}
QCheckBox::indicator {{ width: 16px; height: 16px; }}
"""


def apply_theme(app: QApplication) -> None:
    """Fusion style, a dark palette and the style sheet above."""
    app.setStyle("Fusion")
    pal = QPalette()
    c = {k: QColor(v) for k, v in COLORS.items()}
    pal.setColor(QPalette.ColorRole.Window, c["window"])
    pal.setColor(QPalette.ColorRole.WindowText, c["text"])
    pal.setColor(QPalette.ColorRole.Base, c["window"])
    pal.setColor(QPalette.ColorRole.AlternateBase, c["panel"])
    pal.setColor(QPalette.ColorRole.Text, c["text"])
    pal.setColor(QPalette.ColorRole.Button, c["raised"])
    pal.setColor(QPalette.ColorRole.ButtonText, c["text"])
    pal.setColor(QPalette.ColorRole.Highlight, c["accent"])
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("white"))
    pal.setColor(QPalette.ColorRole.ToolTipBase, c["raised"])
    pal.setColor(QPalette.ColorRole.ToolTipText, c["text"])
    pal.setColor(QPalette.ColorRole.PlaceholderText, c["muted"])
    pal.setColor(QPalette.ColorRole.Link, c["accent"])
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
    ):
        pal.setColor(QPalette.ColorGroup.Disabled, role, c["muted"])
    app.setPalette(pal)
    font = QFont(app.font())
    font.setPointSizeF(max(font.pointSizeF(), 10.0))
    app.setFont(font)
    app.setStyleSheet(STYLE.format(**COLORS))


def scaled_font(font: QFont, factor: float) -> QFont:
    """``font`` scaled by ``factor``, whether its size is in points or (from a style sheet)
    in pixels."""
    out = QFont(font)
    if font.pointSizeF() > 0:
        out.setPointSizeF(font.pointSizeF() * factor)
    elif font.pixelSize() > 0:
        out.setPixelSize(max(1, round(font.pixelSize() * factor)))
    return out
