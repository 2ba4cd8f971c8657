"""Field normalization for canonical records: pure functions on the per-event hot path.

:func:`normalize_fields` cleans the canonical fields of one record (lead, account, deal,
activity, rep) and reports data-quality issues. Every lookup table is built once at import
(the public-suffix list lazily, on first use), and the per-value work is cached with
:func:`functools.lru_cache`: CRM data repeats the same countries, domains and company names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import phonenumbers
from publicsuffixlist import PublicSuffixList

# Shared with routing (account matching); re-exported: ingest code imports them from here.
from salesops_common.free_mail import FREE_MAIL_DOMAINS, is_free_mail_domain

__all__ = [
    "FREE_MAIL_DOMAINS",
    "ISSUES",
    "KINDS",
    "Normalized",
    "company_domain",
    "fold",
    "is_free_mail_domain",
    "normalize_country",
    "normalize_email",
    "normalize_fields",
    "normalize_phone",
    "organization_name",
    "person_name",
]

ISSUES = ("invalid_email", "invalid_phone", "unknown_country")


@dataclass(frozen=True, slots=True)
class Normalized:
    """The normalized fields (exactly the keys given, plus ``domain`` when derivable) and
    the data-quality flags raised on the way, among :data:`ISSUES`."""

    fields: dict[str, Any]
    issues: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# Text helpers

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_LETTERS = re.compile(r"[^\W\d_]+")
# Letters that Unicode does not decompose into a base letter and an accent.
_UNDECOMPOSED = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ħ": "h", "ı": "i", "ß": "ss", "æ": "ae", "œ": "oe"}
    | {"þ": "th", "ð": "d", "Ø": "o", "Ł": "l", "Đ": "d", "Æ": "ae", "Œ": "oe", "Þ": "th"}
)


@lru_cache(maxsize=16384)
def fold(text: str) -> str:
    """Accent-folded, case-folded text: ``"José Müller"`` -> ``"jose muller"``."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.translate(_UNDECOMPOSED).casefold()


def _squash(value: str) -> str | None:
    """Trimmed, inner whitespace collapsed; blank -> None."""
    return " ".join(value.split()) or None


# --------------------------------------------------------------------------------------------
# Countries: ISO 3166-1 alpha-2, alpha-3, English names (then common variants below).

_COUNTRY_TABLE = """\
AD AND Andorra|Principality of Andorra
AE ARE United Arab Emirates
AF AFG Afghanistan|Islamic Republic of Afghanistan
AG ATG Antigua and Barbuda
AI AIA Anguilla
AL ALB Albania|Republic of Albania
AM ARM Armenia|Republic of Armenia
AO AGO Angola|Republic of Angola
AQ ATA Antarctica
AR ARG Argentina|Argentine Republic
AS ASM American Samoa
AT AUT Austria|Republic of Austria
AU AUS Australia
AW ABW Aruba
AX ALA Åland Islands
AZ AZE Azerbaijan|Republic of Azerbaijan
BA BIH Bosnia and Herzegovina|Republic of Bosnia and Herzegovina
BB BRB Barbados
BD BGD Bangladesh|People's Republic of Bangladesh
BE BEL Belgium|Kingdom of Belgium
BF BFA Burkina Faso
BG BGR Bulgaria|Republic of Bulgaria
BH BHR Bahrain|Kingdom of Bahrain
BI BDI Burundi|Republic of Burundi
BJ BEN Benin|Republic of Benin
BL BLM Saint Barthélemy
BM BMU Bermuda
BN BRN Brunei Darussalam
BO BOL Bolivia|Bolivia, Plurinational State of|Plurinational State of Bolivia
BQ BES Bonaire, Sint Eustatius and Saba
BR BRA Brazil|Federative Republic of Brazil
BS BHS Bahamas|Commonwealth of the Bahamas
BT BTN Bhutan|Kingdom of Bhutan
BV BVT Bouvet Island
BW BWA Botswana|Republic of Botswana
BY BLR Belarus|Republic of Belarus
BZ BLZ Belize
CA CAN Canada
CC CCK Cocos (Keeling) Islands
CD COD Congo, The Democratic Republic of the
CF CAF Central African Republic
CG COG Congo|Republic of the Congo
CH CHE Switzerland|Swiss Confederation
CI CIV Côte d'Ivoire|Republic of Côte d'Ivoire
CK COK Cook Islands
CL CHL Chile|Republic of Chile
CM CMR Cameroon|Republic of Cameroon
CN CHN China|People's Republic of China
CO COL Colombia|Republic of Colombia
CR CRI Costa Rica|Republic of Costa Rica
CU CUB Cuba|Republic of Cuba
CV CPV Cabo Verde|Republic of Cabo Verde
CW CUW Curaçao
CX CXR Christmas Island
CY CYP Cyprus|Republic of Cyprus
CZ CZE Czechia|Czech Republic
DE DEU Germany|Federal Republic of Germany
DJ DJI Djibouti|Republic of Djibouti
DK DNK Denmark|Kingdom of Denmark
DM DMA Dominica|Commonwealth of Dominica
DO DOM Dominican Republic
DZ DZA Algeria|People's Democratic Republic of Algeria
EC ECU Ecuador|Republic of Ecuador
EE EST Estonia|Republic of Estonia
EG EGY Egypt|Arab Republic of Egypt
EH ESH Western Sahara
ER ERI Eritrea|the State of Eritrea
ES ESP Spain|Kingdom of Spain
ET ETH Ethiopia|Federal Democratic Republic of Ethiopia
FI FIN Finland|Republic of Finland
FJ FJI Fiji|Republic of Fiji
FK FLK Falkland Islands (Malvinas)
FM FSM Micronesia, Federated States of|Federated States of Micronesia
FO FRO Faroe Islands
FR FRA France|French Republic
GA GAB Gabon|Gabonese Republic
GB GBR United Kingdom|United Kingdom of Great Britain and Northern Ireland
GD GRD Grenada
GE GEO Georgia
GF GUF French Guiana
GG GGY Guernsey
GH GHA Ghana|Republic of Ghana
GI GIB Gibraltar
GL GRL Greenland
GM GMB Gambia|Republic of the Gambia
GN GIN Guinea|Republic of Guinea
GP GLP Guadeloupe
GQ GNQ Equatorial Guinea|Republic of Equatorial Guinea
GR GRC Greece|Hellenic Republic
GS SGS South Georgia and the South Sandwich Islands
GT GTM Guatemala|Republic of Guatemala
GU GUM Guam
GW GNB Guinea-Bissau|Republic of Guinea-Bissau
GY GUY Guyana|Republic of Guyana
HK HKG Hong Kong|Hong Kong Special Administrative Region of China
HM HMD Heard Island and McDonald Islands
HN HND Honduras|Republic of Honduras
HR HRV Croatia|Republic of Croatia
HT HTI Haiti|Republic of Haiti
HU HUN Hungary
ID IDN Indonesia|Republic of Indonesia
IE IRL Ireland
IL ISR Israel|State of Israel
IM IMN Isle of Man
IN IND India|Republic of India
IO IOT British Indian Ocean Territory
IQ IRQ Iraq|Republic of Iraq
IR IRN Iran|Iran, Islamic Republic of|Islamic Republic of Iran
IS ISL Iceland|Republic of Iceland
IT ITA Italy|Italian Republic
JE JEY Jersey
JM JAM Jamaica
JO JOR Jordan|Hashemite Kingdom of Jordan
JP JPN Japan
KE KEN Kenya|Republic of Kenya
KG KGZ Kyrgyzstan|Kyrgyz Republic
KH KHM Cambodia|Kingdom of Cambodia
KI KIR Kiribati|Republic of Kiribati
KM COM Comoros|Union of the Comoros
KN KNA Saint Kitts and Nevis
KP PRK North Korea|Korea, Democratic People's Republic of|Democratic People's Republic of Korea
KR KOR South Korea|Korea, Republic of
KW KWT Kuwait|State of Kuwait
KY CYM Cayman Islands
KZ KAZ Kazakhstan|Republic of Kazakhstan
LA LAO Laos|Lao People's Democratic Republic
LB LBN Lebanon|Lebanese Republic
LC LCA Saint Lucia
LI LIE Liechtenstein|Principality of Liechtenstein
LK LKA Sri Lanka|Democratic Socialist Republic of Sri Lanka
LR LBR Liberia|Republic of Liberia
LS LSO Lesotho|Kingdom of Lesotho
LT LTU Lithuania|Republic of Lithuania
LU LUX Luxembourg|Grand Duchy of Luxembourg
LV LVA Latvia|Republic of Latvia
LY LBY Libya
MA MAR Morocco|Kingdom of Morocco
MC MCO Monaco|Principality of Monaco
MD MDA Moldova|Moldova, Republic of|Republic of Moldova
ME MNE Montenegro
MF MAF Saint Martin (French part)
MG MDG Madagascar|Republic of Madagascar
MH MHL Marshall Islands|Republic of the Marshall Islands
MK MKD North Macedonia|Republic of North Macedonia
ML MLI Mali|Republic of Mali
MM MMR Myanmar|Republic of Myanmar
MN MNG Mongolia
MO MAC Macao|Macao Special Administrative Region of China
MP MNP Northern Mariana Islands|Commonwealth of the Northern Mariana Islands
MQ MTQ Martinique
MR MRT Mauritania|Islamic Republic of Mauritania
MS MSR Montserrat
MT MLT Malta|Republic of Malta
MU MUS Mauritius|Republic of Mauritius
MV MDV Maldives|Republic of Maldives
MW MWI Malawi|Republic of Malawi
MX MEX Mexico|United Mexican States
MY MYS Malaysia
MZ MOZ Mozambique|Republic of Mozambique
NA NAM Namibia|Republic of Namibia
NC NCL New Caledonia
NE NER Niger|Republic of the Niger
NF NFK Norfolk Island
NG NGA Nigeria|Federal Republic of Nigeria
NI NIC Nicaragua|Republic of Nicaragua
NL NLD Netherlands|Kingdom of the Netherlands
NO NOR Norway|Kingdom of Norway
NP NPL Nepal|Federal Democratic Republic of Nepal
NR NRU Nauru|Republic of Nauru
NU NIU Niue
NZ NZL New Zealand
OM OMN Oman|Sultanate of Oman
PA PAN Panama|Republic of Panama
PE PER Peru|Republic of Peru
PF PYF French Polynesia
PG PNG Papua New Guinea|Independent State of Papua New Guinea
PH PHL Philippines|Republic of the Philippines
PK PAK Pakistan|Islamic Republic of Pakistan
PL POL Poland|Republic of Poland
PM SPM Saint Pierre and Miquelon
PN PCN Pitcairn
PR PRI Puerto Rico
PS PSE Palestine, State of|the State of Palestine
PT PRT Portugal|Portuguese Republic
PW PLW Palau|Republic of Palau
PY PRY Paraguay|Republic of Paraguay
QA QAT Qatar|State of Qatar
RE REU Réunion
RO ROU Romania
RS SRB Serbia|Republic of Serbia
RU RUS Russian Federation
RW RWA Rwanda|Rwandese Republic
SA SAU Saudi Arabia|Kingdom of Saudi Arabia
SB SLB Solomon Islands
SC SYC Seychelles|Republic of Seychelles
SD SDN Sudan|Republic of the Sudan
SE SWE Sweden|Kingdom of Sweden
SG SGP Singapore|Republic of Singapore
SH SHN Saint Helena, Ascension and Tristan da Cunha
SI SVN Slovenia|Republic of Slovenia
SJ SJM Svalbard and Jan Mayen
SK SVK Slovakia|Slovak Republic
SL SLE Sierra Leone|Republic of Sierra Leone
SM SMR San Marino|Republic of San Marino
SN SEN Senegal|Republic of Senegal
SO SOM Somalia|Federal Republic of Somalia
SR SUR Suriname|Republic of Suriname
SS SSD South Sudan|Republic of South Sudan
ST STP Sao Tome and Principe|Democratic Republic of Sao Tome and Principe
SV SLV El Salvador|Republic of El Salvador
SX SXM Sint Maarten (Dutch part)
SY SYR Syria|Syrian Arab Republic
SZ SWZ Eswatini|Kingdom of Eswatini
TC TCA Turks and Caicos Islands
TD TCD Chad|Republic of Chad
TF ATF French Southern Territories
TG TGO Togo|Togolese Republic
TH THA Thailand|Kingdom of Thailand
TJ TJK Tajikistan|Republic of Tajikistan
TK TKL Tokelau
TL TLS Timor-Leste|Democratic Republic of Timor-Leste
TM TKM Turkmenistan
TN TUN Tunisia|Republic of Tunisia
TO TON Tonga|Kingdom of Tonga
TR TUR Türkiye|Republic of Türkiye
TT TTO Trinidad and Tobago|Republic of Trinidad and Tobago
TV TUV Tuvalu
TW TWN Taiwan|Taiwan, Province of China
TZ TZA Tanzania|Tanzania, United Republic of|United Republic of Tanzania
UA UKR Ukraine
UG UGA Uganda|Republic of Uganda
UM UMI United States Minor Outlying Islands
US USA United States|United States of America
UY URY Uruguay|Eastern Republic of Uruguay
UZ UZB Uzbekistan|Republic of Uzbekistan
VA VAT Holy See (Vatican City State)
VC VCT Saint Vincent and the Grenadines
VE VEN Venezuela|Venezuela, Bolivarian Republic of|Bolivarian Republic of Venezuela
VG VGB Virgin Islands, British|British Virgin Islands
VI VIR Virgin Islands, U.S.|Virgin Islands of the United States
VN VNM Vietnam|Viet Nam|Socialist Republic of Viet Nam
VU VUT Vanuatu|Republic of Vanuatu
WF WLF Wallis and Futuna
WS WSM Samoa|Independent State of Samoa
YE YEM Yemen|Republic of Yemen
YT MYT Mayotte
ZA ZAF South Africa|Republic of South Africa
ZM ZMB Zambia|Republic of Zambia
ZW ZWE Zimbabwe|Republic of Zimbabwe
"""
# Common names and variants the ISO names above do not cover, written as people type them.
_COUNTRY_ALIASES: dict[str, tuple[str, ...]] = {
    "AE": ("UAE", "U.A.E.", "Emirates"),
    "AT": ("Österreich",),
    "BA": ("Bosnia",),
    "BE": ("België", "Belgique", "Belgien"),
    "BN": ("Brunei",),
    "BQ": ("Caribbean Netherlands", "Bonaire"),
    "BR": ("Brasil",),
    "CD": ("DR Congo", "DRC", "Democratic Republic of the Congo", "Congo-Kinshasa", "Zaire"),
    "CG": ("Republic of the Congo", "Congo-Brazzaville"),
    "CH": ("Schweiz", "Suisse", "Svizzera"),
    "CI": ("Ivory Coast",),
    "CN": ("PRC", "Mainland China"),
    "CV": ("Cape Verde",),
    "CZ": ("Czech Republic", "Czech Rep."),
    "DE": ("Deutschland",),
    "DK": ("Danmark",),
    "ES": ("España", "Espana"),
    "FI": ("Suomi",),
    "FK": ("Falkland Islands", "Falklands"),
    "FM": ("Micronesia",),
    "GB": (
        "UK",
        "U.K.",
        "Great Britain",
        "Britain",
        "England",
        "Scotland",
        "Wales",
        "Northern Ireland",
        "United Kingdom of Great Britain",
    ),
    "HK": ("Hong Kong SAR",),
    "IE": ("Republic of Ireland", "Eire"),
    "IT": ("Italia",),
    "KG": ("Kyrgyz Republic",),
    "KN": ("Saint Kitts", "St Kitts and Nevis"),
    "KP": ("North Korea", "DPRK", "Korea, North"),
    "KR": ("South Korea", "Korea", "Republic of Korea", "Korea, South", "S. Korea"),
    "MF": ("Saint Martin",),
    "MK": ("Macedonia", "FYROM"),
    "MM": ("Burma",),
    "MO": ("Macau", "Macao SAR"),
    "MX": ("México",),
    "NL": ("Holland", "Nederland"),
    "NO": ("Norge",),
    "PL": ("Polska",),
    "PN": ("Pitcairn Islands",),
    "PS": ("Palestine", "Palestinian Territories"),
    "RU": ("Russia",),
    "SE": ("Sverige",),
    "SH": ("Saint Helena",),
    "SJ": ("Svalbard",),
    "SK": ("Slovak Republic",),
    "SX": ("Sint Maarten",),
    "SZ": ("Swaziland",),
    "TL": ("East Timor",),
    "TR": ("Turkey", "Republic of Turkey"),
    "TW": ("Taiwan, Province of China",),
    "US": (
        "U.S.",
        "U.S.A.",
        "United States of America",
        "America",
        "US of A",
        "United States (USA)",
    ),
    "VA": ("Vatican", "Vatican City", "Holy See"),
    "VG": ("British Virgin Islands",),
    "VI": ("US Virgin Islands", "U.S. Virgin Islands"),
    "VN": ("Vietnam",),
    "XK": ("Kosovo", "XKX", "Republic of Kosovo"),
}


def _country_key(text: str) -> str:
    """Lookup key: folded, punctuation-free; "the" dropped, "St" spelled "saint",
    dotted abbreviations joined ("U.S.A." -> "usa")."""
    words = _NON_ALNUM.sub(" ", fold(text).replace("&", " and ")).split()
    if len(words) > 1 and all(len(w) == 1 for w in words):
        return "".join(words)
    if words and words[0] == "the":
        words = words[1:]
    return " ".join("saint" if w == "st" else w for w in words)


def _build_country_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for line in _COUNTRY_TABLE.splitlines():
        alpha2, alpha3, names = line.split(" ", 2)
        index[alpha2.lower()] = alpha2
        index[alpha3.lower()] = alpha2
        for name in names.split("|"):
            index[_country_key(name)] = alpha2
    for region in phonenumbers.SUPPORTED_REGIONS:  # AC, TA, XK: dialling regions, not ISO
        index.setdefault(region.lower(), region)
    for alpha2, aliases in _COUNTRY_ALIASES.items():
        for alias in aliases:
            index[_country_key(alias)] = alpha2
    return index


_COUNTRY_INDEX = _build_country_index()


@lru_cache(maxsize=4096)
def normalize_country(raw: str) -> tuple[str | None, bool]:
    """``(alpha-2, True)`` for a known country; ``(trimmed original, False)`` otherwise;
    ``(None, True)`` for a blank value."""
    text = raw.strip()
    if not text:
        return None, True
    code = _COUNTRY_INDEX.get(_country_key(text))
    return (code, True) if code else (text, False)


# --------------------------------------------------------------------------------------------
# E-mail addresses


@lru_cache(maxsize=65536)
def normalize_email(raw: str) -> tuple[str | None, bool]:
    """``(address, True)``: stripped and lower-cased; ``(None, False)`` when not a
    syntactically valid address; ``(None, True)`` for a blank value."""
    email = raw.strip().lower()
    if not email:
        return None, True
    local, at, domain = email.partition("@")
    valid = (
        bool(at)
        and bool(local)
        and "@" not in domain
        and "." in domain
        and "" not in domain.split(".")
        and len(email.split()) == 1
    )
    return (email, True) if valid else (None, False)


# --------------------------------------------------------------------------------------------
# Phone numbers

_PHONE_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
_E164 = phonenumbers.PhoneNumberFormat.E164


@lru_cache(maxsize=65536)
def normalize_phone(raw: str, region: str | None = None) -> tuple[str | None, bool]:
    """``(E.164, True)``; ``(trimmed original, False)`` when it is not a possible number
    (a national number without a region hint is not); ``(None, True)`` for a blank value.
    ``region`` is an alpha-2 hint for national numbers; extensions are dropped."""
    text = raw.strip()
    if not text:
        return None, True
    candidate = "+" + text[2:] if text.startswith("00") else text
    hint = region if region in _PHONE_REGIONS else None
    try:
        number = phonenumbers.parse(candidate, hint)
    except phonenumbers.NumberParseException:
        return text, False
    if not phonenumbers.is_possible_number(number):
        return text, False
    return phonenumbers.format_number(number, _E164), True


# --------------------------------------------------------------------------------------------
# Company domains

_HOST = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9])?)+")
_IPV4 = re.compile(r"[0-9.]+")


@cache
def _public_suffixes() -> PublicSuffixList:
    """The public-suffix list shipped with the package: offline, parsed once (~0.1 s)."""
    return PublicSuffixList()


@lru_cache(maxsize=65536)
def _registrable(host: str) -> str | None:
    """The registrable domain of an already cleaned host; None for public suffixes,
    IP addresses and free-mail providers."""
    if _IPV4.fullmatch(host) or not _HOST.fullmatch(host):
        return None
    registrable = _public_suffixes().privatesuffix(host)
    if registrable is None or registrable in FREE_MAIL_DOMAINS:
        return None
    return registrable


@lru_cache(maxsize=65536)
def company_domain(raw: str) -> str | None:
    """The registrable company domain of a domain, URL, host or e-mail address:
    ``"https://www.Shop.Example.co.uk/path"`` -> ``"example.co.uk"``. Lower-case, ASCII
    (internationalized names in their ``xn--`` form); None when there is none, or when it is
    a free-mail provider's."""
    text = raw.strip().lower()
    scheme = text.find("://")
    if scheme >= 0:
        text = text[scheme + 3 :]
    text = text.lstrip("/")
    for separator in "/?#":
        text = text.split(separator, 1)[0]
    text = text.rpartition("@")[2]
    if text.startswith("["):  # IPv6 literal
        return None
    host = text.split(":", 1)[0].strip(".")
    if host.startswith("www."):
        host = host[4:]
    if not host:
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return _registrable(host)


# --------------------------------------------------------------------------------------------
# Names

_APOSTROPHES = frozenset("'’")
_PERSON_PARTICLES = frozenset(
    "al bin da das de del della den der des di do dos du la le ten ter van von y zu".split()
)
_ORG_CONNECTORS = frozenset("and at de der des du et for la le of on the und van von".split())
_ORG_FORMS = {
    form.lower().replace(".", ""): form
    for form in (
        "AB AG ApS ASA BV Co Corp GmbH Inc KG KGaA KK LLC LLP Ltd NV Oy Oyj PLC Pte Pty SA "
        "SARL SAS SE SL SpA Srl UG"
    ).split()
}


def _capitalize_runs(word: str) -> str:
    """Capitalize each run of letters of a lower-case word: "o'neil" -> "O'Neil",
    "jean-luc" -> "Jean-Luc", "mcdonald's" -> "McDonald's", "booking.com" -> "Booking.com"."""
    if word.isalpha():  # the common case, without the regex
        if len(word) > 2 and word.startswith("mc"):
            return "Mc" + word[2].upper() + word[3:]
        return word[0].upper() + word[1:]
    parts: list[str] = []
    end = 0
    previous_len = 0
    for match in _LETTERS.finditer(word):
        start, stop = match.span()
        run = match.group()
        parts.append(word[end:start])
        before = word[start - 1] if start > 0 else ""
        if previous_len > 1 and before in _APOSTROPHES:
            parts.append(run)  # possessive or contraction: McDonald's
        elif previous_len and before == "." and len(run) > 1:
            parts.append(run)  # a domain name: Salesforce.com (initials "J.R." still capitalized)
        elif len(run) > 2 and run.startswith("mc"):
            parts.append("Mc" + run[2].upper() + run[3:])
        else:
            parts.append(run[0].upper() + run[1:])
        end = stop
        previous_len = len(run)
    parts.append(word[end:])
    return "".join(parts)


def _recase(text: str, lower_words: frozenset[str], forms: Mapping[str, str]) -> str:
    words = text.lower().split(" ")
    out: list[str] = []
    for position, word in enumerate(words):
        core = word.strip(".,")
        if core in forms:
            out.append(word.replace(core, forms[core], 1))
        elif position > 0 and word in lower_words:
            out.append(word)
        else:
            out.append(_capitalize_runs(word))
    return " ".join(out)


def _uniform_case(text: str) -> bool:
    return text.isupper() or text.islower()


@lru_cache(maxsize=65536)
def person_name(raw: str) -> str | None:
    """Trimmed and collapsed; ALL CAPS or all lower-case re-cased word by word
    ("VAN DER BERG" -> "Van der Berg"); mixed case is kept as typed."""
    text = _squash(raw)
    if text is None or not _uniform_case(text):
        return text
    return _recase(text, _PERSON_PARTICLES, {})


@lru_cache(maxsize=65536)
def organization_name(raw: str) -> str | None:
    """Like :func:`person_name`, with legal forms in their usual case ("ACME GMBH" ->
    "Acme GmbH"), connectors lower-case ("BANK OF AMERICA" -> "Bank of America") and a lone
    short all-caps word kept as an acronym ("IBM")."""
    text = _squash(raw)
    if text is None or not _uniform_case(text):
        return text
    if text.isupper() and text.isalpha() and len(text) <= 4:
        return text
    return _recase(text, _ORG_CONNECTORS, _ORG_FORMS)


# --------------------------------------------------------------------------------------------
# Records


def _trim(raw: str) -> str | None:
    return raw.strip() or None


def _postal_code(raw: str) -> str | None:
    return raw.strip().upper() or None


_Cleaner = Callable[[str], str | None]
_COMMON: dict[str, _Cleaner] = {
    "website": _trim,
    "region": _trim,
    "postal_code": _postal_code,
    "industry": _trim,
    "lead_source": _trim,
    "status": _trim,
}
# Plain per-field cleaners; email, phone, country and domain are handled in normalize_fields.
_CLEANERS: dict[str, dict[str, _Cleaner]] = {
    "lead": {
        **_COMMON,
        "first_name": person_name,
        "last_name": person_name,
        "company": organization_name,
    },
    "account": {**_COMMON, "name": organization_name},
    "deal": {**_COMMON, "name": _squash},
    "activity": _COMMON,
    "rep": {**_COMMON, "name": person_name},
}
KINDS = frozenset(_CLEANERS)
_EMAIL_KINDS = frozenset({"lead", "rep"})
_COUNTRY_KINDS = frozenset({"lead", "account"})
_DOMAIN_SOURCES = {"lead": ("domain", "website", "email"), "account": ("domain", "website")}


def normalize_fields(kind: str, fields: Mapping[str, Any]) -> Normalized:
    """Normalize the canonical ``fields`` of one record of ``kind``.

    Only the given keys come back (a partial update stays partial), plus ``domain`` for a
    lead or account when ``domain``, ``website`` or (lead) ``email`` was given: the
    registrable company domain of the first of them that has a value, None for a free-mail
    provider. None stays None, blank strings become None, non-string values and unknown
    fields pass through unchanged.
    """
    cleaners = _CLEANERS.get(kind)
    if cleaners is None:
        raise ValueError(f"unknown record kind: {kind!r}")
    out = dict(fields)
    issues: list[str] = []
    for key, value in fields.items():
        if type(value) is str and key in cleaners:
            out[key] = cleaners[key](value)

    region: str | None = None
    if kind in _COUNTRY_KINDS and type(country := fields.get("country")) is str:
        code, known = normalize_country(country)
        out["country"] = code
        if known:
            region = code
        else:
            issues.append("unknown_country")

    if kind in _EMAIL_KINDS and type(email := fields.get("email")) is str:
        address, valid = normalize_email(email)
        out["email"] = address
        if not valid:
            issues.append("invalid_email")

    if kind == "lead" and type(phone := fields.get("phone")) is str:
        number, valid = normalize_phone(phone, region)
        out["phone"] = number
        if not valid:
            issues.append("invalid_phone")

    sources = _DOMAIN_SOURCES.get(kind)
    if sources is not None and not fields.keys().isdisjoint(sources):
        domain: str | None = None
        for source in sources:
            value = out.get(source)
            if type(value) is str and value.strip():
                domain = company_domain(value)
                break
        out["domain"] = domain
    return Normalized(out, tuple(issues))
