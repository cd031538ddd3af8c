# One image for the bot and the GPU workers, on Node 24 LTS (the Node CI tests besides Node 20).
# Workers reach an NVIDIA GPU through Vulkan (WebGPU via Dawn): libvulkan1 here; the driver and its
# Vulkan ICD come from NVIDIA's container toolkit (NVIDIA_DRIVER_CAPABILITIES must include
# "graphics"), which puts the ICD where the loader looks by default: no VK_DRIVER_FILES needed.

# Dependencies: better-sqlite3 downloads a prebuilt binary for Node 24 where it can, and compiles
# from source otherwise (g++, make, python3), which stay in this stage only.
FROM node:24-bookworm-slim AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvulkan1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY . .
ENV FACESTYLE_DATA_DIR=/data NODE_ENV=production
VOLUME ["/data", "/app/checkpoints"]
ENTRYPOINT ["node", "bin/facestyle.js"]
CMD ["start"]
