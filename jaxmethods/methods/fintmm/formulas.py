"""FinTMMBench's financial-ratio templates (`data/schema.xlsx`, sheets FinancialTable/Multi).

Each function is the formula the schema's "Guidelines" column states, with its quirks kept:
- Gross Margin, Net Profit Margin and growth rates are percentages ("* 100%" in the template);
- ROE/ROA divide by the AVERAGE of this and the previous period's equity/assets;
- EPS (hence P/E) uses **grossProfit** as "earnings" (sheet Multi: "EPS = grossProfit /
  outstanding shares"; Indicator_list `grossProfit,openPrice`): a quirk of the benchmark that we
  keep so that generated gold answers match the benchmark's;
- P/B, P/S and Dividend Yield use a hypothetical share count given in the question
  (counterfactual); the Dividend Yield is a fraction (the template's "Dividend per share / Stock
  Price", no "* 100%").
`SCHEMA_INDICATORS` lists the indicators each template's `Indicator_list` names.

`fmt_number` is the one answer formatting rule shared by QA generation and template answering:
integral values print as integers, others with two decimals (the prompts: "All the number
rounding should be done to two decimal places").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

__all__ = [
    "SCHEMA_INDICATORS",
    "book_value_per_share",
    "current_ratio",
    "debt_to_equity",
    "dividend_per_share",
    "dividend_yield",
    "eps",
    "fmt_number",
    "gross_margin",
    "growth_rate",
    "net_profit_margin",
    "operating_cash_flow_margin",
    "pb_ratio",
    "pe_ratio",
    "ps_ratio",
    "roa",
    "roe",
    "sales_per_share",
    "trend",
    "working_capital",
]

# Template name -> the schema.xlsx Indicator_list it reads (FinancialTable / Multi sheets).
SCHEMA_INDICATORS: dict[str, tuple[str, ...]] = {
    "current_ratio": ("totalCurrentLiabilities", "totalCurrentAssets"),
    "working_capital": ("totalCurrentLiabilities", "totalCurrentAssets"),
    "gross_margin": ("grossProfit", "totalRevenue", "costOfRevenue", "costofGoodsAndServicesSold"),
    "net_profit_margin": (
        "grossProfit",
        "totalRevenue",
        "costOfRevenue",
        "costofGoodsAndServicesSold",
    ),
    "roe": (
        "grossProfit",
        "totalRevenue",
        "costOfRevenue",
        "costofGoodsAndServicesSold",
        "totalShareholderEquity",
    ),
    "roa": (
        "grossProfit",
        "totalRevenue",
        "costOfRevenue",
        "costofGoodsAndServicesSold",
        "totalAssets",
    ),
    "debt_to_equity": ("shortTermDebt", "longTermDebt", "totalShareholderEquity"),
    "operating_cash_flow_margin": ("totalRevenue", "operatingCashflow"),
    "eps": ("grossProfit",),
    "pe_ratio": ("grossProfit", "openPrice"),
    "pb_ratio": ("totalShareholderEquity", "openPrice"),
    "ps_ratio": ("totalRevenue", "openPrice"),
    "dividend_yield": ("dividendPayout", "openPrice"),
}


def _div(num: float, den: float, what: str) -> float:
    if den == 0:
        raise ZeroDivisionError(f"{what}: denominator is 0")
    return num / den


def current_ratio(total_current_assets: float, total_current_liabilities: float) -> float:
    """Current Ratio = Total Current Assets / Total Current Liabilities."""
    return _div(total_current_assets, total_current_liabilities, "current_ratio")


def working_capital(total_current_assets: float, total_current_liabilities: float) -> float:
    """Working Capital = Total Current Assets - Total Current Liabilities."""
    return total_current_assets - total_current_liabilities


def gross_margin(revenue: float, cost_of_sales: float) -> float:
    """Gross Margin (%) = (Revenue - Cost of Sales) / Revenue * 100."""
    return _div(revenue - cost_of_sales, revenue, "gross_margin") * 100.0


def net_profit_margin(net_profit: float, revenue: float) -> float:
    """Net Profit Margin (%) = Net Profit / Revenue * 100."""
    return _div(net_profit, revenue, "net_profit_margin") * 100.0


def roe(net_profit: float, equity: float, previous_equity: float) -> float:
    """ROE = Net Profit / ((Equity + previous period's Equity) / 2)."""
    return _div(net_profit, (equity + previous_equity) / 2.0, "roe")


def roa(net_profit: float, assets: float, previous_assets: float) -> float:
    """ROA = Net Profit / ((Total Assets + previous period's Total Assets) / 2)."""
    return _div(net_profit, (assets + previous_assets) / 2.0, "roa")


def debt_to_equity(short_term_debt: float, long_term_debt: float, equity: float) -> float:
    """D/E = (Short Term Borrowings + Long Term Borrowings) / Total Equity."""
    return _div(short_term_debt + long_term_debt, equity, "debt_to_equity")


def operating_cash_flow_margin(operating_cashflow: float, revenue: float) -> float:
    """Operating Cash Flow Margin = Net Cash Flows From Operating Activities / Revenue."""
    return _div(operating_cashflow, revenue, "operating_cash_flow_margin")


def eps(gross_profit: float, shares: float) -> float:
    """EPS = grossProfit / outstanding shares (the benchmark's quirk: grossProfit, not net)."""
    return _div(gross_profit, shares, "eps")


def pe_ratio(price: float, gross_profit: float, shares: float) -> float:
    """P/E = Stock Price / EPS, EPS = grossProfit / shares (quirk kept)."""
    return _div(price, eps(gross_profit, shares), "pe_ratio")


def book_value_per_share(equity: float, shares: float) -> float:
    """Book Value per Share = totalShareholderEquity / outstanding shares."""
    return _div(equity, shares, "book_value_per_share")


def pb_ratio(price: float, equity: float, shares: float) -> float:
    """P/B = Stock Price / Book Value per Share."""
    return _div(price, book_value_per_share(equity, shares), "pb_ratio")


def sales_per_share(revenue: float, shares: float) -> float:
    """Sales per Share = totalRevenue / outstanding shares."""
    return _div(revenue, shares, "sales_per_share")


def ps_ratio(price: float, revenue: float, shares: float) -> float:
    """P/S = Stock Price / Sales per Share."""
    return _div(price, sales_per_share(revenue, shares), "ps_ratio")


def dividend_per_share(dividend_payout: float, shares: float) -> float:
    """Dividend per Share = dividendPayout / outstanding shares."""
    return _div(dividend_payout, shares, "dividend_per_share")


def dividend_yield(price: float, dividend_payout: float, shares: float) -> float:
    """Dividend Yield Ratio = Dividend per Share / Stock Price (a fraction)."""
    return _div(dividend_per_share(dividend_payout, shares), price, "dividend_yield")


def growth_rate(old: float, new: float) -> float:
    """Percentage change (%) = (new - old) / old * 100."""
    return _div(new - old, old, "growth_rate") * 100.0


def trend(values: Sequence[float], *, tol: float = 0.0) -> str:
    """ "increasing" / "decreasing" when every step moves that way (by more than `tol`),
    "flat" when no step does, else "fluctuating". Needs at least 2 values."""
    if len(values) < 2:
        raise ValueError(f"trend: needs at least 2 values, got {len(values)}")
    steps = [b - a for a, b in itertools.pairwise(values)]
    if all(s > tol for s in steps):
        return "increasing"
    if all(s < -tol for s in steps):
        return "decreasing"
    if all(abs(s) <= tol for s in steps):
        return "flat"
    return "fluctuating"


def fmt_number(x: float) -> str:
    """Answer string for a number: integral -> "1234", else two decimals -> "12.35"."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"fmt_number: {x} is not finite")
    r = round(x, 2)
    if r == int(r) and abs(x - r) < 1e-9:
        return str(int(r))
    return f"{r:.2f}"
