"""Names and number formats of the temporal KG's items: the Alpha Vantage indicator sets of the
three statements (`table_of`), the entity-name builders (`table_entity_name`,
`price_entity_name`, `chart_entity_name`, `news_entity_name`, `chart_period_name`) and
`fmt_value`. Shared by `kg.build_kg` and the chart summarizers; `kg` re-exports them.

    price_entity_name("AAPL", datetime.date(2022, 3, 15))   # "AAPL 2022-03-15"
    fmt_value(1.5e11)                                          # "150000000000"
"""

from __future__ import annotations

import datetime

from jaxmethods.methods.fintmm.records import Chart, Datum, NewsItem, TimeSpan


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


BALANCE_SHEET = _words(
    "totalAssets totalCurrentAssets cashAndCashEquivalentsAtCarryingValue "
    "cashAndShortTermInvestments inventory currentNetReceivables totalNonCurrentAssets "
    "propertyPlantEquipment accumulatedDepreciationAmortizationPPE intangibleAssets "
    "intangibleAssetsExcludingGoodwill goodwill investments longTermInvestments "
    "shortTermInvestments otherCurrentAssets otherNonCurrentAssets totalLiabilities "
    "totalCurrentLiabilities currentAccountsPayable deferredRevenue currentDebt shortTermDebt "
    "totalNonCurrentLiabilities capitalLeaseObligations longTermDebt currentLongTermDebt "
    "longTermDebtNoncurrent shortLongTermDebtTotal otherCurrentLiabilities "
    "otherNonCurrentLiabilities totalShareholderEquity treasuryStock retainedEarnings "
    "commonStock commonStockSharesOutstanding"
)
INCOME_STATEMENT = _words(
    "grossProfit totalRevenue costOfRevenue costofGoodsAndServicesSold operatingIncome "
    "sellingGeneralAndAdministrative researchAndDevelopment operatingExpenses "
    "investmentIncomeNet netInterestIncome interestIncome interestExpense nonInterestIncome "
    "otherNonOperatingIncome depreciation depreciationAndAmortization incomeBeforeTax "
    "incomeTaxExpense interestAndDebtExpense netIncomeFromContinuingOperations "
    "comprehensiveIncomeNetOfTax ebit ebitda netIncome"
)
CASH_FLOW = _words(
    "operatingCashflow paymentsForOperatingActivities proceedsFromOperatingActivities "
    "changeInOperatingLiabilities changeInOperatingAssets depreciationDepletionAndAmortization "
    "capitalExpenditures changeInReceivables changeInInventory profitLoss cashflowFromInvestment "
    "cashflowFromFinancing proceedsFromRepaymentsOfShortTermDebt "
    "paymentsForRepurchaseOfCommonStock paymentsForRepurchaseOfEquity "
    "paymentsForRepurchaseOfPreferredStock dividendPayout dividendPayoutCommonStock "
    "dividendPayoutPreferredStock proceedsFromIssuanceOfCommonStock "
    "proceedsFromIssuanceOfLongTermDebtAndCapitalSecuritiesNet "
    "proceedsFromIssuanceOfPreferredStock proceedsFromRepurchaseOfEquity "
    "proceedsFromSaleOfTreasuryStock changeInCashAndCashEquivalents changeInExchangeRate"
)
PRICE_ORDER = ("open", "high", "low", "close", "adjusted close", "volume")


def table_of(datum: Datum) -> str:
    """The statement a FinancialTable datum belongs to: its `table` field, else inferred from
    the Alpha Vantage indicator name ("balance_sheet" | "income_statement" | "cash_flow"),
    else "financial_table" (netIncome, in both, counts as income statement)."""
    if datum.table:
        return datum.table
    if datum.indicator in INCOME_STATEMENT:
        return "income_statement"
    if datum.indicator in BALANCE_SHEET:
        return "balance_sheet"
    if datum.indicator in CASH_FLOW:
        return "cash_flow"
    return "financial_table"


def table_entity_name(company: str, table: str, time: TimeSpan) -> str:
    """f"{company} {table_name} {period}", e.g. "Apple Inc income statement 2022-Q1"."""
    return f"{company} {table.replace('_', ' ')} {time.label()}"


def price_entity_name(symbol: str, day: datetime.date) -> str:
    """f"{symbol} {date}", e.g. "AAPL 2022-03-15"."""
    return f"{symbol} {day.isoformat()}"


def chart_period_name(chart: Chart) -> str:
    """ "weekly candlestick chart" | "monthly candlestick chart"."""
    return ("weekly" if chart.period.upper().startswith("W") else "monthly") + " candlestick chart"


def chart_entity_name(company: str, chart: Chart) -> str:
    """f"{company} {chart_name} {period}", e.g. "Apple Inc weekly candlestick chart 2022-W11"."""
    return f"{company} {chart_period_name(chart)} {chart.time.label()}"


def news_entity_name(item: NewsItem) -> str:
    """f"News {date}: {title}"."""
    return f"News {item.time.start.isoformat()}: {' '.join(item.title.split())}"


def fmt_value(v: float) -> str:
    """A number as text without exponent or trailing zeros (1.5e11 -> "150000000000")."""
    v = float(v)
    if v.is_integer():
        return str(int(v))
    return f"{v:.4f}".rstrip("0").rstrip(".")
