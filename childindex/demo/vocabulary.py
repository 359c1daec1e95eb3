"""Word lists for synthetic data: names, nicknames, streets and places (all fictitious places)."""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Given names and surnames by heritage, with how often a child in the county has each
# heritage: common names of children born in England and Wales over the last two decades,
# and the Irish, Scottish, Welsh, South Asian, Polish and West African names a county's
# schools see. Names are drawn within a heritage, with some mixing (see children.py).
HERITAGES: dict[str, tuple[float, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "english": (
        0.66,
        _words(
            "Olivia Amelia Isla Ava Ivy Freya Lily Florence Mia Willow Rosie Sophia Isabella Grace "
            "Daisy Sienna Poppy Elsie Emily Ella Evelyn Phoebe Evie Charlotte Harper Millie "
            "Matilda Maya Sophie Alice Emilia Isabelle Ruby Ellie Jessica Chloe Lucy Holly Megan "
            "Hannah Amy Lauren Bethany Katie Erin Layla Jasmine Leah Molly Scarlett Elizabeth "
            "Eleanor Abigail Imogen Georgia Francesca Courtney Chelsea Jade Paige Tia Keira Kayla "
            "Esme Thea Aurora Violet Hallie Mila Luna Bella Maisie Lexi Eva Zoë Chloë Harriet "
            "Rebecca Naomi"
        ),
        _words(
            "Noah Oliver George Arthur Leo Harry Oscar Archie Henry Theodore Freddie Jack Charlie "
            "Theo Alfie Jacob Thomas Finley Arlo William Lucas Roman Tommy Isaac Teddy Edward "
            "James Joshua Jaxon Alexander Samuel Daniel Max Benjamin Ethan Joseph Harrison Logan "
            "Mason Dylan Riley Tyler Kai Callum Connor Liam Ryan Jake Lewis Kieran Jordan Aaron "
            "Ben Luke Matthew Adam Reggie Ronnie Stanley Louie Elijah Hugo Sebastian Jude Ezra "
            "Albie Bobby Frankie Jenson Kayden Jayden Rory Finn Sonny"
        ),
        _words(
            "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson "
            "Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Jackson "
            "Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan "
            "Allen James Scott Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell "
            "Cook Carter Richardson Bailey Collins Bell Shaw Miller Cox Richards Marshall Anderson "
            "Simpson Ellis Adams Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Hunt "
            "Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker Fisher "
            "Stevens Jenkins Dixon Harvey"
        ),
    ),
    "welsh": (
        0.04,
        _words("Rhiannon Seren Ffion Carys Nia Cerys Megan Alys Elin Lowri"),
        _words("Rhys Dafydd Osian Gethin Iwan Cai Ioan Tomos Macsen Harri"),
        _words(
            "Jones Williams Davies Evans Pritchard Vaughan Llewellyn Price Powell Griffiths Morgan Hughes"
        ),
    ),
    "irish_scottish": (
        0.08,
        _words("Aoife Niamh Siobhan Orla Caoimhe Eilidh Skye Kirsty Mhairi Ciara Roisin Isla"),
        _words("Seán Cian Oisín Darragh Conor Ruairidh Hamish Angus Euan Fraser Callum Rory"),
        _words(
            "O'Brien O'Connor O'Sullivan McCarthy Byrne Ryan Doherty Gallagher Walsh Kennedy Quinn "
            "Murphy Kelly MacDonald McDonald MacLeod McKenzie Fraser Stewart Robertson Reid Ross "
            "Paterson Grant Ferguson McLean Campbell Murray"
        ),
    ),
    "south_asian": (
        0.12,
        _words(
            "Aisha Fatima Maryam Zara Amira Hafsa Inaya Anaya Priya Simran Ayesha Khadija Yasmin "
            "Mariam Leila Zainab Aleena Harleen"
        ),
        _words(
            "Muhammad Mohammed Ibrahim Yusuf Ali Omar Ahmed Hamza Zain Ayaan Arjun Rohan Aarav "
            "Harjeet Mustafa Bilal Daniyal Rayyan"
        ),
        _words(
            "Patel Khan Singh Begum Ali Hussain Ahmed Akhtar Mahmood Rahman Iqbal Shah Kaur Sharma "
            "Gupta Chaudhry Mistry Parmar Chauhan Islam Uddin Miah Choudhury"
        ),
    ),
    "polish": (
        0.05,
        _words("Zofia Julia Zuzanna Maja Wiktoria Hanna Lena Alicja Oliwia"),
        _words("Jakub Szymon Filip Kacper Antoni Oskar Jan Aleksander Franciszek"),
        _words(
            "Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański "
            "Woźniak Mazur Krawczyk"
        ),
    ),
    "west_african": (
        0.03,
        _words("Abimbola Chidinma Ama Precious Adaeze Esi Folake"),
        _words("Kwame Chinedu Tobiloba Emmanuel Kofi Oluwaseun Tunde"),
        _words("Okafor Adeyemi Mensah Osei Okonkwo Boateng Adebayo Owusu"),
    ),
    "other": (
        0.02,
        _words("Sofia Ana Mei Linh Eleni Giulia Andreea Maria"),
        _words("Mateo Luca Minh Wei Nikos Andrei Tiago Marco"),
        _words("Nguyen Chen Wong Papadopoulos Silva Santos Rossi Popescu"),
    ),
}

# Known-as names (stored as 'usual') for a given name.
NICKNAMES: dict[str, tuple[str, ...]] = {
    "Alexander": ("Alex", "Xander"),
    "William": ("Will", "Billy", "Liam"),
    "Thomas": ("Tom", "Tommy"),
    "James": ("Jamie", "Jim"),
    "Joseph": ("Joe", "Joey"),
    "Benjamin": ("Ben", "Benji"),
    "Samuel": ("Sam", "Sammy"),
    "Daniel": ("Dan", "Danny"),
    "Matthew": ("Matt",),
    "Edward": ("Ed", "Eddie", "Ted"),
    "Theodore": ("Theo", "Teddy"),
    "Henry": ("Harry", "Hal"),
    "Elizabeth": ("Beth", "Lizzie", "Libby"),
    "Isabella": ("Bella", "Izzy"),
    "Isabelle": ("Izzy",),
    "Charlotte": ("Lottie", "Charlie"),
    "Eleanor": ("Ellie", "Nell"),
    "Abigail": ("Abbie", "Abi"),
    "Jessica": ("Jess",),
    "Francesca": ("Frankie",),
    "Olivia": ("Liv", "Livvy"),
    "Amelia": ("Millie",),
    "Rebecca": ("Becky",),
    "Harriet": ("Hattie",),
    "Joshua": ("Josh",),
    "Sebastian": ("Seb",),
    "Jakub": ("Kuba",),
    "Oliver": ("Ollie",),
    "Frederick": ("Freddie",),
    "Emmanuel": ("Manny",),
    "Tobiloba": ("Tobi",),
    "Abimbola": ("Bimpe",),
}

# Other spellings the same child is recorded under by one service or another ('alias').
SPELLINGS: dict[str, tuple[str, ...]] = {
    "Muhammad": ("Mohammed", "Mohammad", "Mohamed"),
    "Mohammed": ("Muhammad", "Mohamed"),
    "Jayden": ("Jaden", "Jaiden"),
    "Kayden": ("Caden",),
    "Isabelle": ("Isobel", "Isabel"),
    "Sophie": ("Sofie", "Sophy"),
    "Leah": ("Lea", "Leigh"),
    "Zoë": ("Zoe",),
    "Chloë": ("Chloe",),
    "Seán": ("Sean", "Shaun"),
    "Oisín": ("Oisin",),
    "Niamh": ("Neve",),
    "Aoife": ("Eefa",),
    "Siobhan": ("Shivaun",),
    "Caoimhe": ("Keeva",),
    "Kacper": ("Casper",),
    "Szymon": ("Simon",),
    "Zofia": ("Sophia",),
    "Wiktoria": ("Victoria",),
    "Katie": ("Katy", "Katey"),
    "Callum": ("Calum",),
    "Rhys": ("Reece", "Reese"),
    "Ayesha": ("Aisha",),
    "Aisha": ("Ayesha",),
    "Yasmin": ("Yasmine", "Jasmin"),
    "Harjeet": ("Harjit",),
    "Euan": ("Ewan",),
    "Lewis": ("Louis",),
    "Connor": ("Conor",),
    "Ellie": ("Elly",),
    "Esme": ("Esmé",),
    "Matilda": ("Mathilda",),
    "Jaxon": ("Jackson",),
}

STREETS = (
    "Acacia Avenue",
    "Mill Lane",
    "Church Street",
    "Station Road",
    "The Crescent",
    "Orchard Way",
    "Meadow Close",
    "Victoria Road",
    "Queen Street",
    "Kingfisher Drive",
    "Willow Gardens",
    "Beech Grove",
    "Chapel Row",
    "Market Place",
    "Bridge Street",
    "Rectory Lane",
    "Park View",
    "Highfield Road",
    "School Lane",
    "Nelson Terrace",
    "Albion Street",
    "Foxglove Way",
    "Heron Court",
    "Granary Yard",
    "Tannery Close",
    "Wyvern Road",
    "Ropewalk",
    "Quarry Hill",
    "Sandpiper Rise",
    "Coronation Avenue",
    "Elm Tree Walk",
    "St Anne's Road",
    "Cobbler's Row",
    "Harbour Street",
    "Lime Kiln Lane",
    "Cherry Tree Drive",
    "Mayfield Road",
    "Swan Lane",
)

# Localities of Demoshire (fictitious): code, name, towns, postcode districts DS1..DS24.
LOCALITIES = (
    ("DEM-CN", "Demchester North", ("Demchester", "Northgate"), (1, 2, 3)),
    ("DEM-CS", "Demchester South", ("Demchester", "Southwick Green"), (4, 5, 6)),
    ("DEM-WV", "Wyvern Vale", ("Wyvernford", "Little Wyvern"), (7, 8, 9)),
    ("DEM-MC", "Marlcombe", ("Marlcombe", "Ashcott Magna"), (10, 11, 12)),
    ("DEM-HF", "Hollowfield", ("Hollowfield", "Brackenby"), (13, 14, 15)),
    ("DEM-SM", "Saltmouth Coast", ("Saltmouth", "Gullhaven"), (16, 17, 18)),
    ("DEM-FE", "Fenwick Edge", ("Fenwick", "Reedham Fen"), (19, 20, 21)),
    ("DEM-RD", "Redbury Downs", ("Redbury", "Chalkhurst"), (22, 23, 24)),
)

# A few postcode sectors that lie across a locality boundary: sector -> locality code.
SECTOR_OVERRIDES = {"DS3 9": "DEM-WV", "DS6 8": "DEM-MC", "DS15 7": "DEM-SM", "DS21 9": "DEM-RD"}

# Letters allowed in the last two characters of a UK postcode.
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

SCHOOL_PATTERNS = (
    "{town} Primary School",
    "St Mary's CofE Primary School, {town}",
    "{town} Community Primary School",
    "St Joseph's Catholic Primary School, {town}",
    "{town} Church of England Infant School",
    "{street} Primary Academy, {town}",
    "{town} Junior School",
    "Holy Trinity Primary School, {town}",
)
SECONDARY_PATTERNS = (
    "{town} Academy",
    "{town} High School",
    "{town} Community College",
    "St Aidan's Catholic High School, {town}",
    "{town} School and Sixth Form",
)
EARLY_YEARS_PATTERNS = (
    "Little Acorns Nursery, {town}",
    "{town} Pre-School",
    "Rainbow Day Nursery, {town}",
    "Busy Bees Playgroup, {town}",
    "{town} Children's Centre Nursery",
    "Ladybird Nursery, {town}",
)
GP_PATTERNS = (
    "{town} Medical Practice",
    "{street} Surgery, {town}",
    "{town} Health Centre",
    "The {town} Family Practice",
    "Riverside Surgery, {town}",
)
