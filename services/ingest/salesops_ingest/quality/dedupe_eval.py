"""A labelled set of lead pairs, and how well duplicate matching does on it.

:func:`generate_labelled_set` makes realistic leads (international names, companies with
their domains, phones in several countries in various formats, free-mail and corporate
addresses) and pairs each *existing* lead with a *new* one: either the same person
re-entered with one realistic corruption, or a different person chosen to be hard to tell
apart. Both sides go through :func:`~salesops_ingest.domain.normalize.normalize_fields`
before matching, so the measurement covers normalization too.

:func:`evaluate` measures it as the pipeline decides: a pair whose blocking keys do not
intersect is never compared (the database would not return the candidate); otherwise
:func:`~salesops_ingest.domain.matching.best_match` decides. Deterministic for a seed.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import phonenumbers

from salesops_ingest.domain.matching import LeadIdentity, best_match, blocking_keys
from salesops_ingest.domain.normalize import fold, normalize_fields

__all__ = [
    "DUPLICATE_KINDS",
    "DISTINCT_KINDS",
    "LabelledPair",
    "evaluate",
    "generate_labelled_set",
    "lead_identity",
    "predict",
]

DUPLICATE_KINDS = (
    "email_case",  # same address, other case, stray whitespace
    "phone_format",  # same number written differently, no shared address
    "name_typo",  # one substitution / transposition / deletion in a name
    "swapped_names",  # first and last name swapped
    "name_case",  # ALL CAPS or all lower-case name
    "missing_email",  # no address, same phone and name
    "personal_vs_work_email",  # free-mail address on one side, work address on the other
    "accent_dropped",  # "José" -> "Jose"
)
DISTINCT_KINDS = (
    "colleague_same_last_name",  # same company, same last name, another first name
    "colleague_gendered_name",  # same company and last name: Maria / Mario, Daniel / Daniela
    "colleague_same_first_name",  # same company and first name, another last name
    "family_shared_phone",  # same phone and last name, another first name
    "same_name_other_company",  # a common name at another company
    "near_identical_email",  # john.smith@ / jon.smith@: two mailboxes, two people
)
DUPLICATE_SHARE = 0.4

_FIRST_NAMES = """
James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel
Matthew Anthony Mark Donald Steven Andrew Joshua Kenneth Kevin Brian George Timothy Ronald
Jason Edward Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott
Brandon Benjamin Samuel Gregory Alexander Patrick Frank Raymond Jack Dennis Jerry Tyler
Aaron Henry Douglas Peter Adam Nathan Zachary Walter Kyle Harold Carl Arthur Lawrence
Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty
Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie
Rebecca Sharon Laura Cynthia Kathleen Amy Angela Shirley Brenda Emma Anna Pamela Nicole
Samantha Katherine Christine Helen Debra Rachel Carolyn Janet Maria Catherine Heather Diane
Olivia Julie Joyce Victoria Ruth Virginia Lauren Kelly Christina Joan Evelyn Judith Andrea
Hannah Megan Cheryl Jacqueline Martha Madison Teresa Gloria Sara Janice Ann Kathryn Abigail
Sophia Frances Jean Alice Judy Isabella Julia Grace Amber Denise Danielle Marilyn Beverly
Charlotte Natalie Theresa Diana Brittany Doris Kayla Alexis Lori Marie
José María Jesús Ángel Sebastián Nicolás Andrés Inés Raúl Verónica Mónica Álvaro Iñaki
Begoña Ramón Joaquín Martín Lucía Sofía Valentina Camila Matías Tomás Agustín Florencia
João Antônio Gonçalo Conceição Luís Margarida Vitória Letícia Otávio Caio Thiago
François Hélène Jérôme Agnès Renée Amélie Céline Clément Loïc Noël Benoît Gaëlle Léa
Anaïs Théo Maëlle Élodie Stéphane Frédéric Mathilde Baptiste Camille Guillaume Olivier
Jürgen Günter Jörg Björn Uwe Sören Käthe Lotte Lukas Felix Maximilian Leonie Johanna Frieda
Klaus Dieter Wolfgang Sabine Ursula Heike Matthias Tobias Florian Moritz Jonas Mia Lina
Søren Mads Freja Ida Astrid Håkan Åsa Lars Nils Ingrid Sigrid Magnus Oskar Elsa Maja
Łukasz Małgorzata Paweł Wojciech Grzegorz Agnieszka Katarzyna Krzysztof Zbigniew Bożena
Jiří Tomáš Věra Lucie Ondřej Zdeněk Radek Dušan Željko Milica Dragana Bogdan Nikola
Ömer Çağla Müge Gökhan Şebnem Ayşe Emre Burak Elif Zeynep Mehmet Cem Deniz
Giuseppe Giovanni Francesco Alessandro Lorenzo Matteo Chiara Giulia Federica Niccolò
Aarav Vivaan Aditya Priya Ananya Deepika Rahul Rohan Sanjay Kavya Arjun Lakshmi Vikram
Wei Fang Jing Lei Min Hao Xiu Yan Mei Jun Hiroshi Yuki Haruto Sakura Kenji Aiko Takeshi
Minjun Seoyeon Jiwoo Hyun Eunji Thanh Linh Huong Minh Quang Tuan Anh
Mohammed Ahmed Fatima Aisha Omar Yusuf Layla Karim Nour Rania Tariq Hamza Samir
Chinedu Ngozi Oluwaseun Adaeze Kwame Ama Thabo Sipho Zanele Kofi Amara Emeka
Dmitri Olga Sergei Natalia Ivan Tatiana Anastasia Alexei Yekaterina Igor
María José|Jean-Luc|Anne-Marie|Mary Ann|Juan Pablo|Hans-Peter|Jean-Pierre|Marie-Claire
José Luis|Ana Sofía|Karl-Heinz|Eva-Maria|Li Na|Joseph Michael|Sarah Jane
"""

_LAST_NAMES = """
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Phillips Evans
Turner Parker Collins Edwards Stewart Morris Murphy Cook Rogers Morgan Peterson Cooper Reed
Bailey Bell Gomez Kelly Howard Ward Cox Richardson Wood Watson Brooks Bennett Gray James
Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch
Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hartmann Lange
Bernard Dubois Durand Leroy Moreau Laurent Lefèvre Michel Garnier Faure Rousseau Blanc
Guérin Muller Henry Roussel Nicolas Perrin Morin Mathieu Clément Gauthier Dumont Lopes
Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti
Costa Giordano Mancini Rizzo Lombardi Moretti Barbieri Fontana Santoro Mariani Rinaldi
Jansen Bakker Visser Smit Meijer Mulder Bos Vos Peters Hendriks Dekker Brouwer Dijkstra
Kowalski Nowak Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak
Dąbrowski Novák Svoboda Dvořák Černý Procházka Kučera Veselý Horák Němec Pokorný
Johansson Andersson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson Gustafsson
Hansen Jensen Nielsen Pedersen Andersen Christensen Larsen Sørensen Rasmussen Jørgensen
Korhonen Virtanen Mäkinen Nieminen Mäkelä Hämäläinen Lehtonen Järvinen
Yılmaz Kaya Demir Şahin Çelik Yıldız Öztürk Aydın Özdemir Arslan Doğan Kılıç
Silva Santos Oliveira Souza Pereira Lima Carvalho Ferreira Almeida Gonçalves Ribeiro
Rodrigues Fernández González López Martínez Sánchez Pérez Gómez Díaz Hernández Muñoz
Álvarez Romero Ruiz Jiménez Moreno Navarro Domínguez Vázquez Ramos Serrano Blanco Molina
Castro Ortega Delgado Iglesias Medina Garrido Cortés Castillo Núñez Guerrero
Murphy Kelly Ryan Walsh Byrne Doyle Gallagher Kennedy Lynch Quinn McCarthy MacLeod
Patel Sharma Singh Kumar Gupta Shah Mehta Reddy Iyer Nair Rao Chatterjee Banerjee Joshi
Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo Lin
Kim Park Choi Jung Kang Cho Yoon Jang Lim Han Shin Seo
Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura Kobayashi Kato Yoshida Yamada
Tran Pham Hoang Phan Vu Dang Bui Do Ngo Duong Nguyễn Trần Lê
Haddad Khalil Hassan Ibrahim Mansour Nasser Saleh Farouk
Okafor Adeyemi Mensah Okeke Abubakar Dlamini Nkosi Boateng Eze
Ivanov Petrov Smirnov Popescu Ionescu Nagy Kovács Tóth Szabó Horváth Papadopoulos Georgiou
van der Berg|de Jong|de Vries|van Dijk|de Boer|de Groot|van Leeuwen|de Wit|van der Meer
de la Cruz|García López|Sánchez Ruiz|de Oliveira|dos Santos|da Silva|von Essen|Al-Sayed
O'Neil|O'Brien|O'Connor|McDonald|McKenzie|D'Angelo|Ó Súilleabháin|El Amrani
"""

# Distinct given names a colleague or relative may have: the gendered forms of each other.
_GENDERED_PAIRS = (
    ("Maria", "Mario"),
    ("Daniel", "Daniela"),
    ("Paul", "Paula"),
    ("Luca", "Lucas"),
    ("Julian", "Juliana"),
    ("Francesco", "Francesca"),
    ("Antonio", "Antonia"),
    ("Carlo", "Carla"),
    ("Simon", "Simone"),
    ("Louis", "Louise"),
    ("Leo", "Lea"),
    ("Gabriel", "Gabriela"),
    ("Alexandra", "Alexandre"),
    ("Roberto", "Roberta"),
    ("Bruno", "Bruna"),
    ("Ivan", "Ivana"),
    ("Jan", "Jana"),
    ("Martin", "Martina"),
    ("Patrick", "Patricia"),
    ("Adrian", "Adriana"),
)
# Spellings of one name that are, at the same company, two people with two mailboxes.
_SPELLING_PAIRS = (
    ("John", "Jon"),
    ("Mark", "Marc"),
    ("Eric", "Erik"),
    ("Sara", "Sarah"),
    ("Ann", "Anne"),
    ("Carl", "Karl"),
    ("Alan", "Allan"),
    ("Brian", "Bryan"),
    ("Catherine", "Katherine"),
    ("Philip", "Phillip"),
    ("Teresa", "Theresa"),
    ("Lena", "Lina"),
    ("Mathias", "Matthias"),
    ("Nicolas", "Nikolas"),
    ("Rebecca", "Rebekah"),
    ("Jeffrey", "Jeffery"),
)


@dataclass(frozen=True)
class _Company:
    name: str
    domain: str
    region: str


_COMPANIES = tuple(
    _Company(name, domain, region)
    for name, domain, region in (
        ("Acme Corporation", "acme.com", "US"),
        ("Globex Inc.", "globex.com", "US"),
        ("Initech", "initech.com", "US"),
        ("Umbrella Health", "umbrellahealth.com", "US"),
        ("Hooli", "hooli.io", "US"),
        ("Pied Piper", "piedpiper.com", "US"),
        ("Vandelay Industries", "vandelay.com", "US"),
        ("Stark Logistics", "starklogistics.com", "US"),
        ("Wayne Analytics", "wayneanalytics.ai", "US"),
        ("Cyberdyne Systems", "cyberdyne.tech", "US"),
        ("Soylent Foods", "soylentfoods.com", "US"),
        ("Wonka Confectionery", "wonka.com", "US"),
        ("Northwind Traders", "northwindtraders.com", "US"),
        ("Contoso Ltd", "contoso.com", "US"),
        ("Fabrikam", "fabrikam.com", "US"),
        ("Tailspin Toys", "tailspintoys.com", "US"),
        ("Blue Yonder Airlines", "blueyonderairlines.com", "US"),
        ("Proseware", "proseware.com", "US"),
        ("Litware", "litwareinc.com", "US"),
        ("Adventure Works", "adventure-works.com", "US"),
        ("Maple Leaf Robotics", "mapleleafrobotics.ca", "CA"),
        ("Northern Lights Energy", "northernlights.ca", "CA"),
        ("Tundra Software", "tundrasoftware.com", "CA"),
        ("Thames Analytics", "thamesanalytics.co.uk", "GB"),
        ("Brighton Biotech", "brightonbio.co.uk", "GB"),
        ("Pennine Engineering", "pennine-eng.co.uk", "GB"),
        ("Albion Insurance", "albion-insurance.co.uk", "GB"),
        ("Cotswold Capital", "cotswoldcapital.com", "GB"),
        ("Highland Data", "highlanddata.uk", "GB"),
        ("Rheinwerk Maschinenbau GmbH", "rheinwerk-maschinen.de", "DE"),
        ("Schwarzwald Software AG", "schwarzwald-software.de", "DE"),
        ("Elbe Logistik", "elbe-logistik.de", "DE"),
        ("Bayern Medizintechnik", "bayern-medtech.de", "DE"),
        ("Spree Digital", "spreedigital.de", "DE"),
        ("Alpenblick Versicherungen", "alpenblick.at", "AT"),
        ("Helvetia Präzision", "helvetia-praezision.ch", "CH"),
        ("Léman Finance", "leman-finance.ch", "CH"),
        ("Société Lumière", "societe-lumiere.fr", "FR"),
        ("Provence Cosmétiques", "provence-cosmetiques.fr", "FR"),
        ("Loire Énergie", "loire-energie.fr", "FR"),
        ("Bordeaux Vignobles", "bordeaux-vignobles.fr", "FR"),
        ("Parisienne Conseil", "parisienne-conseil.com", "FR"),
        ("Iberia Renovables", "iberiarenovables.es", "ES"),
        ("Catalunya Tech", "catalunyatech.es", "ES"),
        ("Andalucía Foods", "andaluciafoods.com", "ES"),
        ("Milano Moda", "milanomoda.it", "IT"),
        ("Toscana Vini", "toscanavini.it", "IT"),
        ("Torino Automotive", "torinoauto.it", "IT"),
        ("Dutch Harbor Logistics", "dutchharbor.nl", "NL"),
        ("Tulip Fintech", "tulipfintech.nl", "NL"),
        ("Delta Water Works", "deltawaterworks.nl", "NL"),
        ("Nordic Fjord Seafood", "fjordseafood.no", "NO"),
        ("Stockholm Design", "stockholmdesign.se", "SE"),
        ("Göteborg Marine", "goteborgmarine.se", "SE"),
        ("Copenhagen Cleantech", "cphcleantech.dk", "DK"),
        ("Helsinki Games", "helsinkigames.fi", "FI"),
        ("Wisła Software", "wisla-software.pl", "PL"),
        ("Kraków Textiles", "krakowtextiles.pl", "PL"),
        ("Vltava Systems", "vltava-systems.cz", "CZ"),
        ("Bosphorus Trading", "bosphorustrading.com.tr", "TR"),
        ("Sydney Harbour Consulting", "harbourconsulting.com.au", "AU"),
        ("Outback Mining", "outbackmining.com.au", "AU"),
        ("Melbourne Media", "melbournemedia.net.au", "AU"),
        ("Kiwi Agritech", "kiwiagritech.co.nz", "NZ"),
        ("Rio Pagamentos", "riopagamentos.com.br", "BR"),
        ("São Paulo Logística", "splogistica.com.br", "BR"),
        ("Amazonia Bio", "amazoniabio.com.br", "BR"),
        ("Azteca Telecom", "aztecatelecom.com.mx", "MX"),
        ("Monterrey Steel", "monterreysteel.mx", "MX"),
        ("Andes Mining", "andesmining.cl", "CL"),
        ("Pampas Agro", "pampasagro.com.ar", "AR"),
        ("Bangalore Infotech", "bangaloreinfotech.in", "IN"),
        ("Mumbai Pharma", "mumbaipharma.co.in", "IN"),
        ("Ganges Textiles", "gangestextiles.com", "IN"),
        ("Sakura Electronics", "sakura-electronics.co.jp", "JP"),
        ("Fuji Precision", "fujiprecision.jp", "JP"),
        ("Osaka Robotics", "osakarobotics.co.jp", "JP"),
        ("Han River Semiconductors", "hanriversemi.co.kr", "KR"),
        ("Seoul Mobility", "seoulmobility.kr", "KR"),
        ("Pearl River Manufacturing", "pearlriver-mfg.cn", "CN"),
        ("Shenzhen Devices", "szdevices.com.cn", "CN"),
        ("Lion City Ventures", "lioncity.com.sg", "SG"),
        ("Merlion Payments", "merlionpay.sg", "SG"),
        ("Saigon Coffee Export", "saigoncoffee.vn", "VN"),
        ("Table Mountain Wines", "tablemountainwines.co.za", "ZA"),
        ("Nairobi Agrifin", "nairobiagrifin.co.ke", "KE"),
        ("Lagos Fintech", "lagosfintech.ng", "NG"),
        ("Desert Rose Energy", "desertrose.ae", "AE"),
        ("Tel Aviv Cyber", "tlvcyber.co.il", "IL"),
        ("Dublin Data Centres", "dublindata.ie", "IE"),
        ("Lisboa Turismo", "lisboaturismo.pt", "PT"),
        ("Athens Shipping", "athensshipping.gr", "GR"),
        ("Danube Chemicals", "danubechem.hu", "HU"),
        ("Carpathia Wood", "carpathiawood.ro", "RO"),
        ("Baltic Amber Tech", "balticamber.lt", "LT"),
        ("Quantum Leap Labs", "quantumleaplabs.io", "US"),
        ("Evergreen Health", "evergreenhealth.org", "US"),
        ("Summit Partners Group", "summitpartnersgroup.com", "US"),
        ("Riverbend Capital", "riverbendcapital.com", "US"),
        ("Silverline Security", "silverlinesecurity.com", "GB"),
    )
)

_FREE_MAIL = (  # gmail.com thrice: by far the most common
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "icloud.com",
    "aol.com",
    "proton.me",
    "yahoo.co.uk",
    "hotmail.co.uk",
    "gmx.de",
    "web.de",
    "t-online.de",
    "orange.fr",
    "free.fr",
    "libero.it",
    "yahoo.es",
    "mail.ru",
    "qq.com",
    "163.com",
    "naver.com",
    "uol.com.br",
    "bigpond.com",
    "rediffmail.com",
)

# How people write each country: names, codes, native names, variants.
_COUNTRY_WRITINGS: dict[str, tuple[str, ...]] = {
    "US": ("United States", "USA", "US", "U.S.", "us", "United States of America"),
    "CA": ("Canada", "CA", "CAN"),
    "GB": ("United Kingdom", "UK", "GB", "Great Britain", "England", "GBR"),
    "DE": ("Germany", "DE", "DEU", "Deutschland", "germany"),
    "AT": ("Austria", "AT", "Österreich"),
    "CH": ("Switzerland", "CH", "Schweiz"),
    "FR": ("France", "FR", "FRA", "france"),
    "ES": ("Spain", "ES", "España"),
    "IT": ("Italy", "IT", "Italia"),
    "NL": ("Netherlands", "The Netherlands", "Holland", "NL", "NLD"),
    "NO": ("Norway", "NO", "Norge"),
    "SE": ("Sweden", "SE", "Sverige"),
    "DK": ("Denmark", "DK", "Danmark"),
    "FI": ("Finland", "FI", "FIN"),
    "PL": ("Poland", "PL", "Polska"),
    "CZ": ("Czech Republic", "Czechia", "CZ"),
    "TR": ("Turkey", "Türkiye", "TR"),
    "AU": ("Australia", "AU", "AUS"),
    "NZ": ("New Zealand", "NZ"),
    "BR": ("Brazil", "Brasil", "BR"),
    "MX": ("Mexico", "México", "MX"),
    "CL": ("Chile", "CL"),
    "AR": ("Argentina", "AR"),
    "IN": ("India", "IN", "IND"),
    "JP": ("Japan", "JP", "JPN"),
    "KR": ("South Korea", "Korea, Republic of", "KR"),
    "CN": ("China", "CN", "PRC"),
    "SG": ("Singapore", "SG"),
    "VN": ("Vietnam", "Viet Nam", "VN"),
    "ZA": ("South Africa", "ZA"),
    "KE": ("Kenya", "KE"),
    "NG": ("Nigeria", "NG"),
    "AE": ("United Arab Emirates", "UAE", "AE"),
    "IL": ("Israel", "IL"),
    "IE": ("Ireland", "IE", "Republic of Ireland"),
    "PT": ("Portugal", "PT"),
    "GR": ("Greece", "GR"),
    "HU": ("Hungary", "HU"),
    "RO": ("Romania", "RO"),
    "LT": ("Lithuania", "LT"),
}

_PHONE_STYLES = (
    "e164",
    "international",
    "dashes",
    "parens",
    "00",
    "tel",
    "national",
    "compact",
)
_GROUPS = re.compile(r"(\+\d+) (\d+)[ -](.+)")
_NATIONAL_STYLES = frozenset({"national", "compact"})
_MOBILE = phonenumbers.PhoneNumberType.MOBILE
_FIXED_LINE = phonenumbers.PhoneNumberType.FIXED_LINE
_IDENTITY_FIELDS = tuple(f.name for f in fields(LeadIdentity))


def _names(block: str) -> tuple[str, ...]:
    """A name table: whitespace-separated, or '|'-separated on lines holding multi-part
    names; duplicates (after accent folding) dropped."""
    found: dict[str, str] = {}
    for line in block.strip().splitlines():
        for name in line.split("|") if "|" in line else line.split():
            found.setdefault(fold(name.strip()), name.strip())
    return tuple(found.values())


FIRST_NAMES = _names(_FIRST_NAMES)
LAST_NAMES = _names(_LAST_NAMES)
_ACCENTED_FIRST = tuple(n for n in FIRST_NAMES if not n.isascii())
_ACCENTED_LAST = tuple(n for n in LAST_NAMES if not n.isascii())


@dataclass(frozen=True)
class LabelledPair:
    """An existing lead and a new one, normalized, and whether they are the same person;
    ``corruption`` says how the new one was made (one of the ``*_KINDS``)."""

    existing: LeadIdentity
    new: LeadIdentity
    is_duplicate: bool
    corruption: str


@dataclass(frozen=True)
class _Person:
    first: str
    last: str
    company: _Company
    phone: phonenumbers.PhoneNumber
    phone_region: str
    work_email: str
    personal_email: str


def lead_identity(raw: dict[str, Any]) -> LeadIdentity:
    """The identity of a lead given as raw canonical fields, normalized as the pipeline
    does."""
    normalized = normalize_fields("lead", raw).fields
    return LeadIdentity(**{name: normalized.get(name) for name in _IDENTITY_FIELDS})


def _drop_accents(text: str) -> str:
    """ "José Núñez" -> "Jose Nunez" (case kept)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _local(name: str) -> str:
    """A name as it appears in a mailbox name: folded, letters and digits only."""
    return "".join(c for c in fold(name) if c.isalnum())


class _Generator:
    """Makes people and renders them as raw lead records, from one seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._phones: set[str] = set()
        self._mailboxes: set[str] = set()

    # People ---------------------------------------------------------------------------

    def phone(self, region: str) -> phonenumbers.PhoneNumber:
        kind = _MOBILE if self.rng.random() < 0.7 else _FIXED_LINE
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            example = phonenumbers.example_number_for_type(region, _MOBILE)
        assert example is not None, region
        digits = phonenumbers.national_significant_number(example)
        keep = max(2, len(digits) - 6)
        for _ in range(200):
            tail = "".join(self.rng.choice("0123456789") for _ in range(len(digits) - keep))
            number = phonenumbers.parse(f"+{example.country_code}{digits[:keep]}{tail}")
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if phonenumbers.is_valid_number(number) and e164 not in self._phones:
                self._phones.add(e164)
                return number
        raise RuntimeError(f"no free phone number for {region}")

    def mailbox(self, first: str, last: str, domain: str, *, personal: bool) -> str:
        f, lst = _local(first), _local(last)
        patterns = (
            (f"{f}.{lst}", f"{f}{lst}", f"{f[0]}{lst}", f"{f}_{lst}", f"{lst}.{f}", f"{f}")
            if not personal
            else (f"{f}.{lst}", f"{f}{lst}", f"{f}.{lst}{{n}}", f"{f[0]}{lst}{{n}}", f"{lst}{{n}}")
        )
        for attempt in range(100):
            local = self.rng.choice(patterns).replace("{n}", str(self.rng.randint(1, 99)))
            if attempt > 20:
                local = f"{f}.{lst}{self.rng.randint(100, 9999)}"
            address = f"{local}@{domain}"
            if address not in self._mailboxes:
                self._mailboxes.add(address)
                return address
        raise RuntimeError("no free mailbox")

    def person(
        self,
        first: str | None = None,
        last: str | None = None,
        company: _Company | None = None,
        phone: phonenumbers.PhoneNumber | None = None,
        phone_region: str | None = None,
    ) -> _Person:
        rng = self.rng
        first = first or rng.choice(FIRST_NAMES)
        last = last or rng.choice(LAST_NAMES)
        company = company or rng.choice(_COMPANIES)
        if phone is None:
            phone_region = company.region if rng.random() < 0.85 else rng.choice(["US", "GB"])
            phone = self.phone(phone_region)
        assert phone_region is not None
        return _Person(
            first=first,
            last=last,
            company=company,
            phone=phone,
            phone_region=phone_region,
            work_email=self.mailbox(first, last, company.domain, personal=False),
            personal_email=self.mailbox(first, last, rng.choice(_FREE_MAIL), personal=True),
        )

    # Rendering ------------------------------------------------------------------------

    def phone_text(self, number: phonenumbers.PhoneNumber, style: str) -> str:
        fmt = phonenumbers.PhoneNumberFormat
        international = phonenumbers.format_number(number, fmt.INTERNATIONAL)
        if style == "e164":
            return phonenumbers.format_number(number, fmt.E164)
        if style == "international":
            return international
        if style == "dashes":  # +44 20-7946-0958
            return international.replace(" ", "-").replace("-", " ", 1)
        if style == "parens":  # +44 (20) 7946 0958, +1 (201) 555-0123
            grouped = _GROUPS.fullmatch(international)
            return f"{grouped[1]} ({grouped[2]}) {grouped[3]}" if grouped else international
        if style == "00":
            return "00" + international[1:]
        if style == "tel":
            return phonenumbers.format_number(number, fmt.RFC3966)
        national = phonenumbers.format_number(number, fmt.NATIONAL)
        if style == "national":
            return national
        return "".join(c for c in national if c.isdigit() or c == "+")  # compact

    def website(self, domain: str) -> str:
        return self.rng.choice(
            (
                domain,
                f"www.{domain}",
                f"https://www.{domain}/",
                f"http://{domain}/about-us",
                f"https://{domain.upper()}",
                f"https://www.{domain}/en/contact?ref=crm",
            )
        )

    def record(
        self,
        person: _Person,
        *,
        email: str | None,
        phone_style: str | None,
        website: bool,
        first: str | None = None,
        last: str | None = None,
        company_name: bool = True,
    ) -> dict[str, Any]:
        """A raw lead record of ``person``: ``email`` is "work", "personal", an explicit
        address, or None; ``phone_style`` None leaves the phone out."""
        rng = self.rng
        raw: dict[str, Any] = {
            "first_name": person.first if first is None else first,
            "last_name": person.last if last is None else last,
        }
        if email == "work":
            raw["email"] = person.work_email
        elif email == "personal":
            raw["email"] = person.personal_email
        elif email is not None:
            raw["email"] = email
        if company_name:
            raw["company"] = rng.choice((person.company.name, person.company.name.upper()))
        if website:
            if rng.random() < 0.7:
                raw["website"] = self.website(person.company.domain)
            else:
                raw["domain"] = rng.choice((person.company.domain, person.company.domain.upper()))
        if phone_style is not None:
            raw["phone"] = self.phone_text(person.phone, phone_style)
        if phone_style in _NATIONAL_STYLES or rng.random() < 0.6:
            raw["country"] = rng.choice(_COUNTRY_WRITINGS[person.phone_region])
        return raw

    def style(self, *, other_than: str | None = None) -> str:
        styles = [s for s in _PHONE_STYLES if s != other_than]
        return self.rng.choice(styles)

    def existing(self, person: _Person, *, need: str) -> dict[str, Any]:
        """The record already stored for ``person``; ``need`` ("email", "phone", "domain")
        is the identifier the pair relies on and is always present."""
        rng = self.rng
        email = rng.choices(("work", "personal", None), (0.55, 0.35, 0.10))[0]
        if need == "email" and email is None:
            email = "work"
        if need == "domain" and email != "work":
            website = True
        else:
            website = rng.random() < 0.5
        phone = need == "phone" or rng.random() < 0.7
        return self.record(
            person, email=email, phone_style=self.style() if phone else None, website=website
        )


# Corruptions: each returns (existing record, new record) of one person -------------------

_Maker = Callable[[_Generator], tuple[dict[str, Any], dict[str, Any]]]


def _email_case(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    p = g.person()
    old = g.existing(p, need="email")
    address = str(old["email"])
    variant = g.rng.choice((address.upper(), address.title(), address.capitalize()))
    new = g.record(
        p,
        email=f"{g.rng.choice(('', ' ', '  '))}{variant} ",
        phone_style=None,
        website=False,
        company_name=g.rng.random() < 0.5,
    )
    return old, new


def _shared_identifier(g: _Generator, p: _Person) -> tuple[dict[str, Any], str]:
    """An existing record and the identifier ("phone" or "domain") a new one will share."""
    need = g.rng.choice(("phone", "domain"))
    return g.existing(p, need=need), need


def _new_sharing(
    g: _Generator,
    p: _Person,
    old: dict[str, Any],
    need: str,
    *,
    first: str | None = None,
    last: str | None = None,
) -> dict[str, Any]:
    """A new record of ``p`` (named ``first`` ``last``) that shares ``need`` with ``old``
    but not its address: by phone without an address, or by the company's website with the
    other address of the two (or none)."""
    if need == "phone":
        return g.record(p, email=None, phone_style=g.style(), website=False, first=first, last=last)
    email: str | None = "work" if old.get("email") == p.personal_email else "personal"
    if email == "work" and g.rng.random() < 0.5:
        email = None
    return g.record(p, email=email, phone_style=None, website=True, first=first, last=last)


def _phone_format(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    p = g.person()
    style = g.style()
    email = g.rng.choice(("work", "personal"))
    old = g.record(p, email=email, phone_style=style, website=g.rng.random() < 0.5)
    other = None if g.rng.random() < 0.6 else g.mailbox(p.first, p.last, "gmail.com", personal=True)
    return old, g.record(p, email=other, phone_style=g.style(other_than=style), website=False)


def _typo(rng: random.Random, name: str) -> str:
    """One substitution, adjacent transposition or deletion of a letter."""
    for _ in range(50):
        letters = [i for i, c in enumerate(name) if c.isalpha()]
        i = rng.choice(letters)
        kind = rng.choice(("substitution", "transposition", "deletion"))
        if kind == "substitution":
            typed = name[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + name[i + 1 :]
        elif kind == "transposition" and i + 1 < len(name) and name[i + 1].isalpha():
            typed = name[:i] + name[i + 1] + name[i] + name[i + 2 :]
        elif kind == "deletion" and len(letters) > 2:
            typed = name[:i] + name[i + 1 :]
        else:
            continue
        if fold(typed) != fold(name):
            return typed
    raise RuntimeError(f"cannot misspell {name!r}")


def _name_typo(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    p = g.person()
    old, need = _shared_identifier(g, p)
    if g.rng.random() < 0.5:
        return old, _new_sharing(g, p, old, need, first=_typo(g.rng, p.first))
    return old, _new_sharing(g, p, old, need, last=_typo(g.rng, p.last))


def _swapped_names(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    p = g.person()
    old, need = _shared_identifier(g, p)
    return old, _new_sharing(g, p, old, need, first=p.last, last=p.first)


def _name_case(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    p = g.person()
    old, need = _shared_identifier(g, p)
    case = g.rng.choice((str.upper, str.lower))
    return old, _new_sharing(g, p, old, need, first=case(p.first), last=case(p.last))


def _missing_email(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    p = g.person()
    old = g.existing(p, need="phone")
    if "email" not in old:
        old["email"] = p.work_email
    return old, g.record(p, email=None, phone_style="e164", website=False, company_name=False)


def _personal_vs_work_email(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    p = g.person()
    work_first = g.rng.random() < 0.5
    old = g.record(
        p,
        email="work" if work_first else "personal",
        phone_style=None,
        website=not work_first,
    )
    new = g.record(
        p,
        email="personal" if work_first else "work",
        phone_style=None,
        website=work_first,
    )
    return old, new


def _accent_dropped(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    if g.rng.random() < 0.5:
        p = g.person(first=g.rng.choice(_ACCENTED_FIRST))
    else:
        p = g.person(last=g.rng.choice(_ACCENTED_LAST))
    old, need = _shared_identifier(g, p)
    return old, _new_sharing(
        g, p, old, need, first=_drop_accents(p.first), last=_drop_accents(p.last)
    )


# Distinct people: each returns (existing record, new record) of two people ----------------


def _other_first(rng: random.Random, first: str) -> str:
    while True:
        other = rng.choice(FIRST_NAMES)
        if fold(other) != fold(first):
            return other


def _colleagues(g: _Generator, a: _Person, b: _Person) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two people at one company: each with a work address (the new one sometimes without
    an address, found by the company's website)."""
    old = g.record(
        a,
        email="work",
        phone_style=g.style() if g.rng.random() < 0.5 else None,
        website=g.rng.random() < 0.5,
    )
    email = g.rng.choices(("work", "personal", None), (0.6, 0.2, 0.2))[0]
    new = g.record(
        b,
        email=email,
        phone_style=g.style() if g.rng.random() < 0.5 else None,
        website=email != "work" or g.rng.random() < 0.5,
    )
    return old, new


def _colleague_same_last_name(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    a = g.person()
    b = g.person(first=_other_first(g.rng, a.first), last=a.last, company=a.company)
    return _colleagues(g, a, b)


def _colleague_gendered_name(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    first_a, first_b = g.rng.sample(g.rng.choice(_GENDERED_PAIRS), 2)
    a = g.person(first=first_a)
    b = g.person(first=first_b, last=a.last, company=a.company)
    return _colleagues(g, a, b)


def _colleague_same_first_name(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    a = g.person()
    while True:
        last = g.rng.choice(LAST_NAMES)
        if fold(last) != fold(a.last):
            break
    b = g.person(first=a.first, last=last, company=a.company)
    return _colleagues(g, a, b)


def _family_shared_phone(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    if g.rng.random() < 0.3:
        first_a, first_b = g.rng.sample(g.rng.choice(_GENDERED_PAIRS), 2)
    else:
        first_a = g.rng.choice(FIRST_NAMES)
        first_b = _other_first(g.rng, first_a)
    a = g.person(first=first_a)
    b = g.person(first=first_b, last=a.last, phone=a.phone, phone_region=a.phone_region)
    old = g.record(
        a,
        email=g.rng.choice(("work", "personal")),
        phone_style=g.style(),
        website=g.rng.random() < 0.3,
    )
    email = g.rng.choices(("work", "personal", None), (0.3, 0.4, 0.3))[0]
    new = g.record(b, email=email, phone_style=g.style(), website=g.rng.random() < 0.3)
    return old, new


def _same_name_other_company(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    a = g.person(
        first=g.rng.choice(FIRST_NAMES[:40]), last=g.rng.choice(LAST_NAMES[:40])
    )  # common names
    while True:
        company = g.rng.choice(_COMPANIES)
        if company.domain != a.company.domain:
            break
    b = g.person(first=a.first, last=a.last, company=company)
    old = g.existing(a, need="email")
    new = g.existing(b, need=g.rng.choice(("email", "phone", "domain")))
    return old, new


def _near_identical_email(g: _Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    first_a, first_b = g.rng.sample(g.rng.choice(_SPELLING_PAIRS), 2)
    a = g.person(first=first_a)
    corporate = g.rng.random() < 0.75
    company = a.company if corporate else g.rng.choice(_COMPANIES)
    b = g.person(first=first_b, last=a.last, company=company)
    f_a, f_b, last = _local(first_a), _local(first_b), _local(a.last)
    domain = a.company.domain if corporate else g.rng.choice(_FREE_MAIL)
    pattern = g.rng.choice(("{f}.{l}", "{f}{l}", "{f}_{l}", "{l}.{f}"))
    old = g.record(
        a,
        email=pattern.format(f=f_a, l=last) + "@" + domain,
        phone_style=g.style() if g.rng.random() < 0.5 else None,
        website=g.rng.random() < 0.3,
    )
    new = g.record(
        b,
        email=pattern.format(f=f_b, l=last) + "@" + domain,
        phone_style=g.style() if g.rng.random() < 0.5 else None,
        website=g.rng.random() < 0.3,
    )
    return old, new


_DUPLICATE_MAKERS: dict[str, _Maker] = {
    "email_case": _email_case,
    "phone_format": _phone_format,
    "name_typo": _name_typo,
    "swapped_names": _swapped_names,
    "name_case": _name_case,
    "missing_email": _missing_email,
    "personal_vs_work_email": _personal_vs_work_email,
    "accent_dropped": _accent_dropped,
}
_DISTINCT_MAKERS: dict[str, _Maker] = {
    "colleague_same_last_name": _colleague_same_last_name,
    "colleague_gendered_name": _colleague_gendered_name,
    "colleague_same_first_name": _colleague_same_first_name,
    "family_shared_phone": _family_shared_phone,
    "same_name_other_company": _same_name_other_company,
    "near_identical_email": _near_identical_email,
}


def generate_labelled_set(seed: int = 7, size: int = 4000) -> list[LabelledPair]:
    """``size`` labelled pairs, about 40% duplicates, every kind of pair (near) equally
    represented within its label, shuffled; the same list for the same arguments."""
    rng = random.Random(seed)
    gen = _Generator(rng)
    duplicates = round(size * DUPLICATE_SHARE)
    plan: list[tuple[str, bool]] = [
        (kind, True) for kind in _spread(DUPLICATE_KINDS, duplicates)
    ] + [(kind, False) for kind in _spread(DISTINCT_KINDS, size - duplicates)]
    pairs: list[LabelledPair] = []
    for kind, is_duplicate in plan:
        maker = (_DUPLICATE_MAKERS if is_duplicate else _DISTINCT_MAKERS)[kind]
        old, new = maker(gen)
        pairs.append(LabelledPair(lead_identity(old), lead_identity(new), is_duplicate, kind))
    rng.shuffle(pairs)
    return pairs


def _spread(kinds: Sequence[str], count: int) -> list[str]:
    """``count`` kinds, round-robin."""
    return [kinds[i % len(kinds)] for i in range(count)]


def _shares_a_key(pair: LabelledPair) -> bool:
    return not set(blocking_keys(pair.new)).isdisjoint(blocking_keys(pair.existing))


def predict(pair: LabelledPair) -> str | None:
    """The rule that merges the pair's new lead into the existing one, or None: as the
    pipeline decides, through the blocking keys and then :func:`best_match`."""
    if not _shares_a_key(pair):
        return None
    match = best_match(pair.new, [(0, pair.existing)])
    return None if match is None else match.rule


def evaluate(pairs: Sequence[LabelledPair] | None = None) -> dict[str, Any]:
    """Precision and recall of duplicate matching on ``pairs`` (the default labelled set).

    ``by_corruption`` has, per kind of pair: ``pairs``, ``compared`` (those sharing a
    blocking key, so that the matcher had to decide), ``matched``, the ``rules`` that fired,
    and ``recall`` for duplicates or ``false_positive`` for distinct people."""
    if pairs is None:
        pairs = generate_labelled_set()
    tp = fp = fn = 0
    by_kind: dict[str, dict[str, Any]] = {}
    rules: dict[str, Counter[str]] = {}
    for pair in pairs:
        stats = by_kind.setdefault(
            pair.corruption,
            {"duplicate": pair.is_duplicate, "pairs": 0, "compared": 0, "matched": 0},
        )
        stats["pairs"] += 1
        stats["compared"] += _shares_a_key(pair)
        rule = predict(pair)
        if rule is not None:
            stats["matched"] += 1
            rules.setdefault(pair.corruption, Counter())[rule] += 1
        if pair.is_duplicate:
            tp += rule is not None
            fn += rule is None
        else:
            fp += rule is not None
    for kind, stats in by_kind.items():
        if stats["duplicate"]:
            stats["recall"] = stats["matched"] / stats["pairs"]
        else:
            stats["false_positive"] = stats["matched"]
        stats["rules"] = dict(sorted(rules.get(kind, Counter()).items()))
    duplicates = tp + fn
    return {
        "pairs": len(pairs),
        "duplicates": duplicates,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / duplicates if duplicates else 1.0,
        "true_positive": tp,
        "false_positive": fp,
        "false_negative": fn,
        "by_corruption": dict(sorted(by_kind.items())),
    }
