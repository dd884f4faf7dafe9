//! The static world: regions, store formats, categories, and the generated stores, products and
//! assortments.

use crate::hash::{hash, unit};
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use retail_core::{Product, Store};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CategoryId {
    Produce,
    Dairy,
    Bakery,
    Meat,
    Beverages,
    Frozen,
    Pantry,
    Snacks,
    Household,
    PersonalCare,
    Health,
    Electronics,
    Seasonal,
    Pet,
}

/// What a category is and how its demand moves.
pub struct Category {
    pub id: CategoryId,
    pub name: &'static str,
    pub sub_categories: &'static [&'static str],
    /// Share of the catalog.
    pub share: f64,
    pub price_range: (f64, f64),
    /// Shelf life range in days (non-perishables get years).
    pub shelf_life: (i32, i32),
    pub pack_sizes: &'static [i32],
    /// Yearly seasonality: amplitude and day of year of the peak (northern hemisphere).
    pub season_amplitude: f64,
    pub season_peak_doy: f64,
    /// Demand change per °C above 18 °C (log scale), e.g. 0.03 ≈ +3% per degree.
    pub temperature_sensitivity: f64,
    /// Targeted by thieves (theft bursts pick these first).
    pub high_value: bool,
}

pub const CATEGORIES: &[Category] = &[
    cat(CategoryId::Produce, "Produce", &["Fruit", "Vegetables", "Salads"], 0.10, (0.5, 6.0), (3, 14), &[6, 10], 0.10, 200.0, 0.005, false),
    cat(CategoryId::Dairy, "Dairy", &["Milk", "Cheese", "Yogurt"], 0.09, (0.8, 9.0), (7, 60), &[6, 12], 0.03, 180.0, 0.0, false),
    cat(CategoryId::Bakery, "Bakery", &["Bread", "Pastries", "Cakes"], 0.05, (1.0, 8.0), (2, 7), &[6, 12], 0.05, 350.0, 0.0, false),
    cat(CategoryId::Meat, "Meat & Seafood", &["Beef", "Poultry", "Fish"], 0.07, (3.0, 30.0), (3, 10), &[4, 6], 0.12, 190.0, 0.01, false),
    cat(
        CategoryId::Beverages,
        "Beverages",
        &["Soft Drinks", "Water", "Juice", "Beer & Wine"],
        0.10,
        (0.8, 25.0),
        (180, 720),
        &[6, 12, 24],
        0.25,
        200.0,
        0.03,
        true,
    ),
    cat(CategoryId::Frozen, "Frozen", &["Ice Cream", "Frozen Meals", "Frozen Vegetables"], 0.07, (2.0, 12.0), (180, 365), &[6, 12], 0.30, 200.0, 0.04, false),
    cat(
        CategoryId::Pantry,
        "Pantry",
        &["Pasta & Rice", "Canned Goods", "Sauces", "Soups"],
        0.13,
        (0.8, 10.0),
        (365, 1095),
        &[12, 24],
        0.12,
        15.0,
        -0.01,
        false,
    ),
    cat(CategoryId::Snacks, "Snacks", &["Chips", "Candy", "Cookies"], 0.09, (1.0, 7.0), (90, 365), &[12, 24], 0.08, 300.0, 0.0, false),
    cat(CategoryId::Household, "Household", &["Cleaning", "Paper Goods", "Laundry"], 0.08, (2.0, 25.0), (1095, 1825), &[6, 12], 0.05, 100.0, 0.0, false),
    cat(
        CategoryId::PersonalCare,
        "Personal Care",
        &["Hair Care", "Oral Care", "Skin Care"],
        0.07,
        (2.0, 30.0),
        (365, 1095),
        &[6, 12],
        0.05,
        190.0,
        0.005,
        true,
    ),
    cat(CategoryId::Health, "Health", &["Vitamins", "Pain Relief", "Cold & Flu"], 0.04, (4.0, 35.0), (365, 730), &[6, 12], 0.35, 20.0, -0.02, true),
    cat(CategoryId::Electronics, "Electronics", &["Batteries", "Cables", "Headphones"], 0.03, (5.0, 150.0), (1825, 3650), &[4, 6], 0.20, 345.0, 0.0, true),
    cat(CategoryId::Seasonal, "Seasonal & Gifts", &["Decorations", "Toys", "Garden"], 0.04, (3.0, 60.0), (730, 1825), &[4, 6], 0.50, 345.0, 0.01, false),
    cat(CategoryId::Pet, "Pet", &["Dog Food", "Cat Food", "Pet Care"], 0.04, (2.0, 40.0), (365, 730), &[6, 12], 0.02, 100.0, 0.0, false),
];

#[allow(clippy::too_many_arguments)]
const fn cat(
    id: CategoryId,
    name: &'static str,
    sub_categories: &'static [&'static str],
    share: f64,
    price_range: (f64, f64),
    shelf_life: (i32, i32),
    pack_sizes: &'static [i32],
    season_amplitude: f64,
    season_peak_doy: f64,
    temperature_sensitivity: f64,
    high_value: bool,
) -> Category {
    Category { id, name, sub_categories, share, price_range, shelf_life, pack_sizes, season_amplitude, season_peak_doy, temperature_sensitivity, high_value }
}

pub fn category(id: CategoryId) -> &'static Category {
    &CATEGORIES[id as usize]
}

/// A region: one climate, one time zone.
pub struct Region {
    pub name: &'static str,
    pub utc_offset_hours: i32,
    pub mean_temp_c: f64,
    pub temp_amplitude_c: f64,
    pub rain_probability: f64,
    pub southern_hemisphere: bool,
    pub cities: &'static [&'static str],
}

/// The chain trades on several continents, so some stores are open at any UTC hour.
pub const REGIONS: &[Region] = &[
    Region {
        name: "us-east",
        utc_offset_hours: -5,
        mean_temp_c: 13.0,
        temp_amplitude_c: 12.0,
        rain_probability: 0.30,
        southern_hemisphere: false,
        cities: &["New York", "Boston", "Atlanta", "Miami", "Philadelphia"],
    },
    Region {
        name: "us-central",
        utc_offset_hours: -6,
        mean_temp_c: 12.0,
        temp_amplitude_c: 14.0,
        rain_probability: 0.25,
        southern_hemisphere: false,
        cities: &["Chicago", "Dallas", "Houston", "Minneapolis", "Kansas City"],
    },
    Region {
        name: "us-west",
        utc_offset_hours: -8,
        mean_temp_c: 16.0,
        temp_amplitude_c: 6.0,
        rain_probability: 0.15,
        southern_hemisphere: false,
        cities: &["Los Angeles", "San Francisco", "Seattle", "San Diego", "Portland"],
    },
    Region {
        name: "uk-ireland",
        utc_offset_hours: 0,
        mean_temp_c: 11.0,
        temp_amplitude_c: 6.0,
        rain_probability: 0.45,
        southern_hemisphere: false,
        cities: &["London", "Manchester", "Dublin", "Leeds", "Glasgow"],
    },
    Region {
        name: "central-europe",
        utc_offset_hours: 1,
        mean_temp_c: 10.0,
        temp_amplitude_c: 10.0,
        rain_probability: 0.35,
        southern_hemisphere: false,
        cities: &["Berlin", "Munich", "Vienna", "Zurich", "Prague"],
    },
    Region {
        name: "gulf",
        utc_offset_hours: 4,
        mean_temp_c: 28.0,
        temp_amplitude_c: 8.0,
        rain_probability: 0.03,
        southern_hemisphere: false,
        cities: &["Dubai", "Abu Dhabi", "Doha", "Muscat", "Sharjah"],
    },
    Region {
        name: "southeast-asia",
        utc_offset_hours: 8,
        mean_temp_c: 28.0,
        temp_amplitude_c: 2.0,
        rain_probability: 0.45,
        southern_hemisphere: false,
        cities: &["Singapore", "Kuala Lumpur", "Manila", "Penang", "Cebu"],
    },
    Region {
        name: "australia-east",
        utc_offset_hours: 10,
        mean_temp_c: 19.0,
        temp_amplitude_c: 5.0,
        rain_probability: 0.30,
        southern_hemisphere: true,
        cities: &["Sydney", "Brisbane", "Melbourne", "Canberra", "Newcastle"],
    },
];

/// Store formats: how big, how long open, how busy, how wide an assortment.
pub struct Format {
    pub name: &'static str,
    pub share: f64,
    pub size_sqm: (u32, u32),
    /// Local opening and closing hour; some stores of the format open around the clock.
    pub hours: (u8, u8),
    pub round_the_clock_share: f64,
    /// Relative traffic (normalised so the chain's mean store is 1).
    pub traffic: f64,
    /// Share of `skus_per_store` carried.
    pub assortment_share: f64,
}

pub const FORMATS: &[Format] = &[
    Format { name: "hypermarket", share: 0.10, size_sqm: (8_000, 15_000), hours: (8, 22), round_the_clock_share: 0.2, traffic: 2.2, assortment_share: 1.0 },
    Format { name: "supermarket", share: 0.45, size_sqm: (1_500, 4_000), hours: (7, 22), round_the_clock_share: 0.1, traffic: 1.2, assortment_share: 0.7 },
    Format { name: "convenience", share: 0.30, size_sqm: (150, 400), hours: (6, 24), round_the_clock_share: 0.3, traffic: 0.6, assortment_share: 0.3 },
    Format { name: "express", share: 0.15, size_sqm: (80, 200), hours: (7, 23), round_the_clock_share: 0.0, traffic: 0.45, assortment_share: 0.2 },
];

/// What the simulator knows about a store beyond its `dim_store` row.
#[derive(Clone, Debug)]
pub struct StoreMeta {
    pub region: usize,
    pub format: usize,
    /// Relative traffic, chain mean 1.
    pub traffic: f64,
}

/// What the simulator knows about a product beyond its `dim_product` row.
#[derive(Clone, Debug)]
pub struct ProductMeta {
    pub category: CategoryId,
    /// Long-tailed popularity (Zipf over a random rank, with noise).
    pub popularity: f64,
    pub list_price_cents: u32,
    pub unit_cost_cents: u32,
    pub pack_size: i32,
    pub lead_time_days: f64,
    pub lead_time_sd_days: f64,
}

pub(crate) fn pick_weighted<R: Rng>(rng: &mut R, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    let mut x = rng.random::<f64>() * total;
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        last = i;
        if x < w {
            return i;
        }
        x -= w;
    }
    last
}

/// Regions in the order stores are given them, round robin. Time zones alternate far apart
/// (−6, +4, 0, +10, −5, +8, +1, −8) so that any world of two stores or more has one open at
/// every hour of the UTC day: a demo watched at night still sees live sales.
const STORE_REGION_ORDER: [usize; 8] = [1, 5, 3, 7, 0, 6, 4, 2];

pub(crate) fn generate_stores<R: Rng>(rng: &mut R, n: usize) -> (Vec<Store>, Vec<StoreMeta>) {
    let mut stores = Vec::with_capacity(n);
    let mut metas = Vec::with_capacity(n);
    for i in 0..n {
        let region = STORE_REGION_ORDER[i % STORE_REGION_ORDER.len()];
        let format = pick_weighted(rng, FORMATS.iter().map(|f| f.share));
        let f = &FORMATS[format];
        let r = &REGIONS[region];
        let city = r.cities[rng.random_range(0..r.cities.len())];
        let (opens, closes) = if rng.random::<f64>() < f.round_the_clock_share { (0, 24) } else { f.hours };
        stores.push(Store {
            store_id: store_id(i),
            name: format!("{city} {} #{}", capitalise(f.name), i + 1),
            region: r.name.to_string(),
            city: city.to_string(),
            format: f.name.to_string(),
            size_sqm: rng.random_range(f.size_sqm.0..=f.size_sqm.1),
            opens_hour: opens,
            closes_hour: closes,
        });
        metas.push(StoreMeta { region, format, traffic: f.traffic * rng.random_range(0.8..1.25) });
    }
    let mean = metas.iter().map(|m| m.traffic).sum::<f64>() / n.max(1) as f64;
    for m in &mut metas {
        m.traffic /= mean;
    }
    (stores, metas)
}

pub fn store_id(index: usize) -> String {
    format!("store_{:03}", index + 1)
}

pub fn sku(index: usize) -> String {
    format!("SKU{:06}", index + 1)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

const BRAND_HEADS: &[&str] = &["North", "Sun", "Blue", "Green", "Golden", "Silver", "Red", "Maple", "River", "Stone", "Bright", "Happy"];
const BRAND_TAILS: &[&str] = &["field", "vale", "crest", "wood", "brook", "leaf", "star", "ridge", "bay", "farm", "works", "mark"];
const SUPPLIER_KINDS: &[&str] = &["Foods", "Distribution", "Trading Co.", "Wholesale", "Brands", "Supply"];
const SIZES: &[&str] = &["Small", "Regular", "Large", "Family Size", "Value Pack", "Mini", "Classic", "Premium", "Organic", "Light"];

pub(crate) fn generate_products<R: Rng>(rng: &mut R, seed: u64, n: usize) -> (Vec<Product>, Vec<ProductMeta>) {
    // Suppliers: one per ~120 SKUs, each with its own lead time.
    let supplier_count = (n / 120).max(3);
    let suppliers: Vec<(String, f64, f64)> = (0..supplier_count)
        .map(|i| {
            let h = hash(&[seed, 0x5u64, i as u64]);
            let name = format!(
                "{}{} {}",
                BRAND_HEADS[(h % BRAND_HEADS.len() as u64) as usize],
                BRAND_TAILS[((h >> 8) % BRAND_TAILS.len() as u64) as usize],
                SUPPLIER_KINDS[((h >> 16) % SUPPLIER_KINDS.len() as u64) as usize]
            );
            let mean = 2.0 + 8.0 * unit(h >> 3);
            let sd = mean * (0.1 + 0.25 * unit(h.rotate_left(17)));
            (name, (mean * 10.0).round() / 10.0, (sd * 10.0).round() / 10.0)
        })
        .collect();
    // A random popularity rank per SKU, Zipf(0.9)-shaped, times log-normal noise.
    let mut ranks: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        ranks.swap(i, rng.random_range(0..=i));
    }
    let noise = LogNormal::new(0.0, 0.35).expect("valid log-normal");
    let mut products = Vec::with_capacity(n);
    let mut metas = Vec::with_capacity(n);
    for (i, rank) in ranks.iter().enumerate() {
        let c = &CATEGORIES[pick_weighted(rng, CATEGORIES.iter().map(|c| c.share))];
        let sub = c.sub_categories[rng.random_range(0..c.sub_categories.len())];
        let brand = if rng.random::<f64>() < 0.2 {
            "Northway Basics".to_string()
        } else {
            let b = rng.random_range(0..BRAND_HEADS.len() * BRAND_TAILS.len());
            format!("{}{}", BRAND_HEADS[b % BRAND_HEADS.len()], BRAND_TAILS[b / BRAND_HEADS.len()])
        };
        let (lo, hi) = c.price_range;
        // Log-uniform prices: many cheap items, a few expensive ones.
        let price = (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp();
        let list_price_cents = charm_price_cents(price);
        let unit_cost_cents = ((list_price_cents as f64) * rng.random_range(0.55..0.8)).round().max(1.0) as u32;
        let pack_size = c.pack_sizes[rng.random_range(0..c.pack_sizes.len())];
        let supplier = &suppliers[rng.random_range(0..supplier_count)];
        let shelf_life = rng.random_range(c.shelf_life.0..=c.shelf_life.1);
        let popularity = (1.0 / (*rank as f64 + 10.0).powf(0.9)) * noise.sample(rng);
        products.push(Product {
            product_id: sku(i),
            sku: sku(i),
            product_name: format!("{brand} {sub} {}", SIZES[rng.random_range(0..SIZES.len())]),
            category: c.name.to_string(),
            sub_category: sub.to_string(),
            brand,
            supplier: supplier.0.clone(),
            unit_cost: unit_cost_cents as f64 / 100.0,
            list_price: list_price_cents as f64 / 100.0,
            shelf_life_days: shelf_life,
            pack_size,
            lead_time_days: supplier.1,
            lead_time_sd_days: supplier.2,
        });
        metas.push(ProductMeta {
            category: c.id,
            popularity,
            list_price_cents,
            unit_cost_cents,
            pack_size,
            lead_time_days: supplier.1,
            lead_time_sd_days: supplier.2,
        });
    }
    (products, metas)
}

/// Round to a retail "charm" price ending in 9 cents (x.x9), at least 0.09.
pub fn charm_price_cents(price: f64) -> u32 {
    let dimes = (price * 10.0).round().max(1.0) as u32;
    dimes * 10 - 1
}

/// The SKUs a store carries: weighted sampling without replacement (popular SKUs are carried
/// almost everywhere, the tail only in big stores), returned sorted by product index.
pub(crate) fn generate_assortment<R: Rng>(rng: &mut R, metas: &[ProductMeta], size: usize) -> Vec<u32> {
    if size >= metas.len() {
        return (0..metas.len() as u32).collect();
    }
    // Efraimidis–Spirakis: key = u^(1/w); keep the `size` largest (compared as ln(u)/w).
    let mut keyed: Vec<(f64, u32)> = metas.iter().enumerate().map(|(i, m)| (rng.random::<f64>().max(1e-300).ln() / m.popularity.sqrt(), i as u32)).collect();
    keyed.select_nth_unstable_by(size - 1, |a, b| b.0.total_cmp(&a.0));
    let mut chosen: Vec<u32> = keyed[..size].iter().map(|k| k.1).collect();
    chosen.sort_unstable();
    chosen
}
